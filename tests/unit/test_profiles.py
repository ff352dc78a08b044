"""Scripted event sequences with hand-computed expected profiles."""

from __future__ import annotations

from typing import Any

import pytest

from profiles.fold import ItemFacts, RejectedEvent, fold_event
from profiles.rules import DAY_MS, ProfileRules
from profiles.view import build_profile, lifecycle, next_change_at, rfm, tier
from schemas.events import parse_event
from schemas.profile import UserState

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MINUTE = 60_000
RULES = ProfileRules()


def at(days: float) -> int:
    return T0 + int(days * DAY_MS)


class Script:
    """Builds events for one user and folds them into a state."""

    def __init__(self, rules: ProfileRules = RULES) -> None:
        self.state = UserState()
        self.rules = rules
        self.counter = 0
        self.outcomes: list[Any] = []

    def event(self, kind: str, ts: int, properties: dict[str, Any], **envelope: Any) -> Any:
        self.counter += 1
        raw = {
            "event_id": f"e{self.counter}",
            "type": kind,
            "user_id": "u",
            "timestamp": ts,
            "properties": properties,
            **envelope,
        }
        return parse_event(raw)

    def apply(
        self, kind: str, ts: int, items: dict[str, ItemFacts] | None = None, **properties: Any
    ) -> Any:
        envelope = {k: properties.pop(k) for k in ("session_id", "channel") if k in properties}
        outcome = fold_event(
            self.state, self.event(kind, ts, properties, **envelope), self.rules, items or {}
        )
        self.outcomes.append(outcome)
        return outcome

    def order(
        self,
        ts: int,
        order_id: str,
        lines: list[tuple[str, str, str, float]],
        revenue: float,
        currency: str = "EUR",
    ) -> None:
        products = [
            {"product_id": p, "category": c, "brand": b, "price": price, "quantity": 1}
            for p, c, b, price in lines
        ]
        self.apply(
            "order_completed",
            ts,
            order_id=order_id,
            products=products,
            revenue=revenue,
            currency=currency,
        )

    def profile(
        self, now: int, tertiles: dict[str, tuple[float, float]] | None = None
    ) -> dict[str, Any]:
        return build_profile("u", self.state, now, self.rules, tertiles or {})


@pytest.fixture
def shopper() -> Script:
    script = Script()
    script.order(
        at(0), "A", [("p1", "electronics", "acme", 100.0), ("p2", "books", "read", 50.0)], 150.0
    )
    script.order(at(10), "B", [("p3", "electronics", "acme", 100.0)], 100.0)
    script.apply("order_refunded", at(12), order_id="B", revenue=40.0, currency="EUR")
    script.apply("coupon_redeemed", at(13), points_used=30)
    script.order(at(20), "C", [("p4", "electronics", "acme", 1000.0)], 1000.0)
    return script


def test_rfm_tier_and_points(shopper: Script) -> None:
    now = at(25)
    assert rfm(shopper.state, now, RULES) == {
        "recency_days": 5.0,
        "frequency": 3,
        "monetary": 1210.0,
        "r": 5,
        "f": 3,
        "m": 5,
    }
    assert tier(shopper.state, now, RULES) == "gold"
    # earned 150 + 100 + 1000, minus 40 refunded, minus 30 redeemed
    assert shopper.profile(now)["points"] == 1180


def test_full_refund_removes_the_order_from_frequency_and_monetary(shopper: Script) -> None:
    shopper.apply("order_refunded", at(21), order_id="C", currency="EUR")
    assert rfm(shopper.state, at(25), RULES)["frequency"] == 2
    assert rfm(shopper.state, at(25), RULES)["monetary"] == 210.0
    assert tier(shopper.state, at(25), RULES) == "silver"
    assert shopper.profile(at(25))["points"] == 1250 - 40 - 1000 - 30


def test_lifecycle_moves_with_time_alone(shopper: Script) -> None:
    stages = {day: lifecycle(shopper.state, at(day), RULES) for day in (25, 35, 80, 81, 200, 201)}
    assert stages == {
        25: "new",
        35: "active",
        80: "active",
        81: "at_risk",
        200: "at_risk",
        201: "dormant",
    }
    shopper.order(at(210), "D", [("p5", "books", "read", 20.0)], 20.0)
    assert lifecycle(shopper.state, at(215), RULES) == "win_back"
    assert lifecycle(shopper.state, at(241), RULES) == "loyal"  # 4 orders in 365 days
    assert lifecycle(shopper.state, at(271), RULES) == "at_risk"  # 61 days after order D


def test_prospect_and_rolling_window_for_tier() -> None:
    script = Script()
    script.apply("product_viewed", at(0), product_id="p")
    assert lifecycle(script.state, at(1), RULES) == "prospect"
    script.order(at(0), "big", [("p", "home", "b", 6000.0)], 6000.0)
    assert tier(script.state, at(364), RULES) == "diamond"
    assert tier(script.state, at(366), RULES) == "basic"


def test_next_change_at_points_to_the_first_boundary(shopper: Script) -> None:
    # Last order at day 20: recency 7 days is the first boundary after day 25.
    assert next_change_at(shopper.state, at(25), RULES) == at(27) + 1
    assert next_change_at(Script().state, at(0), RULES) is None


def test_affinity_decays_with_a_14_day_half_life() -> None:
    script = Script()
    facts = {"p1": ItemFacts("electronics", "acme"), "p2": ItemFacts("books", "read")}
    script.apply("product_viewed", at(0), facts, product_id="p1")
    script.apply("product_added", at(14), facts, product_id="p2", price=5.0, quantity=1)
    affinities = script.profile(at(14))["affinities"]
    # viewed weight 1 fourteen days (one half-life) before added weight 4: 0.5 vs 4.
    assert affinities["category"] == pytest.approx(
        {"books": 4 / 4.5, "electronics": 0.5 / 4.5}, abs=1e-6
    )
    assert affinities["brand"] == pytest.approx({"read": 4 / 4.5, "acme": 0.5 / 4.5}, abs=1e-6)


def test_removed_subtracts_affinity_and_top_10_are_exposed() -> None:
    script = Script()
    for index in range(12):
        script.apply(
            "product_viewed", at(0), product_id=f"p{index}", category=f"c{index:02d}", brand="b"
        )
    script.apply(
        "product_removed", at(0), product_id="p0", category="c00", brand="b", price=1.0, quantity=1
    )
    categories = script.profile(at(0))["affinities"]["category"]
    assert len(categories) == 10 and "c00" not in categories
    assert categories["c01"] == pytest.approx(1 / 11, abs=1e-6)


def test_sessions_start_on_new_id_or_30_minutes_of_silence() -> None:
    script = Script()
    for minute, session in ((0, "s1"), (10, "s1"), (50, "s1"), (55, "s2"), (56, "s2")):
        script.apply(
            "product_viewed", T0 + minute * MINUTE, product_id=f"p{minute}", session_id=session
        )
    assert script.profile(T0 + 60 * MINUTE)["sessions"] == 3
    assert script.profile(T0 + 60 * MINUTE)["session"] == {"items": ["p56", "p55"]}


def test_events_later_than_the_lateness_are_counted_but_not_sessioned() -> None:
    script = Script()
    script.apply("product_viewed", at(0), product_id="a", session_id="s1")
    script.apply("product_viewed", at(1), product_id="b", session_id="s2")
    script.apply("product_viewed", at(2), product_id="c", session_id="s3")
    late = script.apply("product_viewed", at(0.5), product_id="d", session_id="s9")
    assert late.late is True
    profile = script.profile(at(2))
    assert profile["counts"] == {"product_viewed": 4}
    assert profile["sessions"] == 3


def test_cart_lines_value_and_clearing_by_order() -> None:
    script = Script()
    script.apply("product_added", at(0), product_id="p1", price=10.0, quantity=2)
    script.apply("product_added", at(0.001), product_id="p2", price=5.0, quantity=1)
    script.apply("product_removed", at(0.002), product_id="p1", price=10.0, quantity=1)
    assert script.profile(at(1))["cart"] == {
        "items": [
            {"product_id": "p1", "quantity": 1, "price": 10.0},
            {"product_id": "p2", "quantity": 1, "price": 5.0},
        ],
        "value": 15.0,
    }
    script.order(at(0.01), "o", [("p1", "x", "y", 10.0)], 10.0)
    assert script.profile(at(1))["cart"] == {
        "items": [{"product_id": "p2", "quantity": 1, "price": 5.0}],
        "value": 5.0,
    }


def test_only_whitelisted_traits_are_kept() -> None:
    script = Script()
    outcome = script.apply(
        "identify",
        at(0),
        traits={
            "age_band": "25-34",
            "email": "x@example.com",
            "name": "Bob",
            "phone": "+49",
            "address": {"street": "x"},
            "marketing_consent": True,
            "birthday": "04-12",
        },
    )
    assert outcome.traits_dropped == 4
    assert script.profile(at(0))["traits"] == {
        "age_band": "25-34",
        "birthday": "04-12",
        "marketing_consent": True,
    }
    assert b"example.com" not in script.state.to_bytes()


def test_channel_preference() -> None:
    script = Script()
    for _ in range(9):
        script.apply("product_viewed", at(0), product_id="p", channel="web")
    assert script.profile(at(0))["channel_preference"] == "online"
    script.apply("product_viewed", at(0), product_id="p", channel="store")
    assert script.profile(at(0))["channel_preference"] == "omnichannel"


def test_spending_power_and_price_band() -> None:
    script = Script()
    script.order(
        at(0),
        "o1",
        [("p1", "shoes", "b", 40.0), ("p2", "shoes", "b", 60.0), ("p3", "shoes", "b", 140.0)],
        240.0,
    )
    spending = script.profile(at(1), {"shoes": (50.0, 100.0)})["spending"]
    assert spending == {"avg_price": 80.0, "median_price": 60.0, "price_band": "mid"}
    assert script.profile(at(1), {"shoes": (70.0, 120.0)})["spending"]["price_band"] == "low"
    assert script.profile(at(1))["spending"]["price_band"] is None


def test_foreign_currency_is_rejected_unless_converted() -> None:
    script = Script()
    with pytest.raises(RejectedEvent, match=r"properties\.currency: USD"):
        script.order(at(0), "o", [("p", "c", "b", 100.0)], 100.0, currency="USD")
    assert script.state.counts == {}
    converting = Script(ProfileRules(currency_rates={"USD": 0.5}))
    converting.order(at(0), "o", [("p", "c", "b", 100.0)], 100.0, currency="USD")
    assert rfm(converting.state, at(1), converting.rules)["monetary"] == 50.0


def test_same_order_twice_counts_once() -> None:
    script = Script()
    script.order(at(0), "o", [("p", "c", "b", 10.0)], 10.0)
    script.order(at(0), "o", [("p", "c", "b", 10.0)], 10.0)
    assert rfm(script.state, at(1), RULES)["frequency"] == 1
    assert script.profile(at(1))["points"] == 10
