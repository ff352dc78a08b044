"""Campaign stats from a scripted stream equal the hand-computed numbers."""

from __future__ import annotations

from currents import keys
from currents.buckets import bucket
from tests.unit.test_trigger_scenarios import World, campaign
from triggers.measure import campaign_stats

DAY = 24 * 60


def test_stats_on_a_scripted_stream_equal_hand_computed_uplift() -> None:
    users = [f"s{i}" for i in range(200)]
    treated = [u for u in users if bucket("campaign:c", u) >= 0.5][:4]
    held = [u for u in users if bucket("campaign:c", u) < 0.5][:4]
    world = World(
        {
            "c": campaign(
                {"type": "event", "event_type": "product_viewed"},
                action={"message": "hi", "coupon_code": "HI"},
                guardrails={"holdout": 0.5},
            )
        }
    )

    def order(user: str, minute: float, revenue: float) -> None:
        world.send(
            user,
            "order_completed",
            minute,
            order_id=f"o-{user}-{minute}",
            revenue=revenue,
            currency="EUR",
            products=[{"product_id": "p", "price": revenue}],
        )

    for user in treated + held:
        world.consent(user)
        world.send(user, "product_viewed", 10, product_id="p")  # exposure at minute 10
    assert len(world.promotions) == 4
    promotion = {p["user_id"]: p for p in world.promotions}
    t0, t1, t2, t3 = treated
    for user in (t0, t1, t2):
        world.send(user, "promotion_viewed", 11, promotion_id=promotion[user]["promotion_id"])
    world.send(t0, "promotion_clicked", 12, promotion_id=promotion[t0]["promotion_id"])
    world.send(t0, "coupon_redeemed", 13, coupon_code=promotion[t0]["coupon_code"])
    world.send(t3, "promotion_viewed", 11, promotion_id="not-ours")  # not attributable
    # Treatment: t0 orders twice within 7 days (one conversion, both orders' revenue),
    # t1 once, t2 only after 8 days (not attributed), t3 never.
    order(t0, 20, 50.0)
    order(t0, 2 * DAY, 25.5)
    order(t1, 6 * DAY, 100.0)
    order(t2, 8 * DAY, 70.0)
    # Holdout: h0 orders within the window, h1 only after 10 days; h2, h3 never.
    h0, h1, _, _ = held
    order(h0, 3 * DAY, 40.0)
    order(h1, 10 * DAY, 90.0)

    counters = {
        name: amount
        for (key, name), amount in world.counters.items()
        if key == keys.campaign_stats("c")
    }
    stats = campaign_stats(counters)
    # By hand: treatment 2/4 = 0.5, holdout 1/4 = 0.25, uplift 0.25;
    # se = sqrt(0.5 * 0.5 / 4 + 0.25 * 0.75 / 4) = sqrt(0.109375) = 0.3307189;
    # 1.959964 * se = 0.648197.
    assert stats["sends"] == 4
    assert (stats["views"], stats["clicks"], stats["redemptions"]) == (3, 1, 1)
    assert stats["treatment"] == {
        "exposures": 4,
        "conversions": 2,
        "conversion_rate": 0.5,
        "orders": 3,
        "revenue": 175.5,
    }
    assert stats["holdout"] == {
        "exposures": 4,
        "conversions": 1,
        "conversion_rate": 0.25,
        "orders": 1,
        "revenue": 40.0,
    }
    assert stats["conversion_rate"] == 0.5 and stats["revenue"] == 175.5
    assert stats["uplift"] == {"value": 0.25, "ci95": [-0.398197, 0.898197]}


def test_no_holdout_no_uplift() -> None:
    stats = campaign_stats({"sent": 10, "treatment:conversions": 3})
    assert stats["uplift"] == {"value": None, "ci95": None}
    assert stats["treatment"]["conversion_rate"] == 0.3
    assert stats["holdout"]["conversion_rate"] is None
