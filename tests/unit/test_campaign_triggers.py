"""Every trigger, with a controllable clock: fires, does not fire, cancelled, capped, quiet
hours, no consent, holdout, duplicates.

``Store`` plays the Redis side of the worker the way streams/handler.py does: it keeps the
campaign timers sorted set and the item watchers from the writes, sweeps due timers (the
ones only in the sorted set too) and feeds an upsert the item's previous price and its
recent viewers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from currents import keys
from currents.buckets import bucket
from currents.writes import ZAdd, ZRemove
from schemas.events import parse_event
from streams.decode import PositionedEvent
from streams.processor import BatchInput
from tests.unit.test_trigger_scenarios import MINUTE, T0, World, campaign

DAY = 24 * 60  # minutes


def minute_of(moment: datetime) -> float:
    return (moment.timestamp() * 1000 - T0) / MINUTE


class Store(World):
    def __init__(self, campaigns: dict[str, Any]) -> None:
        super().__init__(campaigns)
        self.timers: dict[str, float] = {}
        self.watchers: dict[str, dict[str, float]] = {}
        self.prices: dict[str, float] = {}

    def _collect(self, result: Any) -> None:
        super()._collect(result)
        for write in result.writes:
            if isinstance(write, ZAdd) and write.key == keys.campaign_timers():
                self.timers.update(write.mapping)
            elif isinstance(write, ZRemove) and write.key == keys.campaign_timers():
                for member in write.members:
                    self.timers.pop(member, None)
            elif isinstance(write, ZAdd) and write.key.endswith(":watchers"):
                self.watchers.setdefault(write.key, {}).update(write.mapping)

    def sweep(self, minute: float) -> None:
        now = T0 + round(minute * MINUTE)
        due = sorted(m for m, score in self.timers.items() if score <= now)
        per_user: dict[str, list[str]] = {}
        for member in due:
            timer, user = member.split("|", 1)
            per_user.setdefault(user, []).append(timer)
            del self.timers[member]
        users = {u: self.users[u] for u in per_user if u in self.users}
        self._collect(self.processor.reevaluate(users, now, {}, "timer", per_user))

    def upsert(self, item: str, price: float, minute: float) -> None:
        self.offset += 1
        now = T0 + int(minute * MINUTE)
        raw = {
            "event_id": f"item-{self.offset}",
            "type": "item_upserted",
            "timestamp": now,
            "properties": {"item_id": item, "price": price, "category": "shoes"},
        }
        event = PositionedEvent(parse_event(raw), 0, self.offset, 0, raw)
        recent = self.watchers.get(keys.item_watchers(item), {})
        viewers = [u for u, ts in recent.items() if ts >= now - 14 * DAY * MINUTE]
        batch = BatchInput(
            [event], self.users, {}, now, {}, prices={item: (self.prices.get(item), viewers)}
        )
        self.prices[item] = price
        self._collect(self.processor.process(batch))

    def view(self, user: str, minute: float, item: str = "p", category: str = "shoes") -> None:
        self.send(user, "product_viewed", minute, product_id=item, category=category, price=60.0)

    def sent(self, user: str | None = None) -> list[str]:
        return [p["trigger"] for p in self.promotions if user in (None, p["user_id"])]

    def stat(self, campaign_id: str, name: str) -> int:
        return self.counters.get((keys.campaign_stats(campaign_id), name), 0)


# --- one recipe per trigger: the campaign and the events that make it fire -----------------
def fire_cart(world: Store, user: str, start: float) -> None:
    world.add(user, start)
    world.sweep(start + 31)


def fire_browse(world: Store, user: str, start: float) -> None:
    for step in range(3):
        world.view(user, start + step)
    world.sweep(start + 2 + 61)


def fire_first_visit(world: Store, user: str, start: float) -> None:
    pass  # the consent event was the first visit


def fire_new_user(world: Store, user: str, start: float) -> None:
    world.order(user, start)


def fire_win_back(world: Store, user: str, start: float) -> None:
    world.order(user, start)  # a customer...
    world.view(user, start + 200 * DAY)  # ...dormant for months returns


def fire_tier(world: Store, user: str, start: float) -> None:
    world.send(
        user,
        "order_completed",
        start,
        order_id=f"big-{user}-{start}",
        revenue=5000.0,
        currency="EUR",
        products=[{"product_id": "p", "price": 5000.0}],
    )


def fire_birthday(world: Store, user: str, start: float) -> None:
    world.sweep(minute_of(datetime(2026, 9, 30, 0, 1, tzinfo=UTC)))


def fire_price_drop(world: Store, user: str, start: float) -> None:
    world.view(user, start, item="boots")
    world.upsert("boots", 100.0 + start / 1000, start + 1)  # distinct prices per firing
    world.upsert("boots", 80.0 + start / 1000, start + 2)
    world.sweep(start + 2)


def fire_segment(world: Store, user: str, start: float) -> None:
    fire_tier(world, user, start)


def fire_event(world: Store, user: str, start: float) -> None:
    world.view(user, start)


RECIPES: dict[str, tuple[dict[str, Any], Any]] = {
    "cart_abandoned": ({"type": "cart_abandoned", "delay_minutes": 30}, fire_cart),
    "browse_abandoned": (
        {"type": "browse_abandoned", "min_views": 3, "delay_minutes": 60},
        fire_browse,
    ),
    "first_visit": ({"type": "first_visit"}, fire_first_visit),
    "new_user": ({"type": "new_user"}, fire_new_user),
    "win_back": ({"type": "win_back"}, fire_win_back),
    "tier_upgraded": ({"type": "tier_upgraded"}, fire_tier),
    "birthday": ({"type": "birthday"}, fire_birthday),
    "price_drop": ({"type": "price_drop"}, fire_price_drop),
    "segment_entered": ({"type": "segment_entered", "segment": "big"}, fire_segment),
    "event": ({"type": "event", "event_type": "product_viewed"}, fire_event),
}


def world_for(kind: str, **guardrails: Any) -> Store:
    trigger, _ = RECIPES[kind]
    world = Store({"c": campaign(trigger, guardrails=guardrails)})
    if kind == "segment_entered":
        from profiles.segments import SegmentDefinition, SegmentRegistry

        world.processor.segments = SegmentRegistry.from_definitions(
            [SegmentDefinition.from_json(b'{"name": "big", "condition": "tier != basic"}')]
        )
    return world


def join(world: Store, user: str, *, consent: bool = True) -> None:
    traits = {"marketing_consent": consent, "birthday": "1990-09-30", "region": "GB-LND"}
    world.send(user, "identify", 0, traits=traits)


@pytest.mark.parametrize("kind", sorted(RECIPES))
def test_fires_once(kind: str) -> None:
    world = world_for(kind)
    join(world, "ann")
    RECIPES[kind][1](world, "ann", 10)
    assert world.sent("ann") == [kind if kind != "event" else "event"]
    assert world.stat("c", "sent") == 1


@pytest.mark.parametrize("kind", sorted(RECIPES))
def test_no_consent_no_promotion(kind: str) -> None:
    world = world_for(kind)
    join(world, "bob", consent=False)
    RECIPES[kind][1](world, "bob", 10)
    assert world.sent() == []
    assert world.stat("c", "no_consent") == 1


@pytest.mark.parametrize("kind", sorted(RECIPES))
def test_holdout_is_recorded_and_gets_nothing(kind: str) -> None:
    held = next(f"h{i}" for i in range(200) if bucket("campaign:c", f"h{i}") < 0.5)
    world = world_for(kind, holdout=0.5)
    join(world, held)
    RECIPES[kind][1](world, held, 10)
    assert world.sent() == []
    assert world.stat("c", "holdout") == 1
    assert world.users[held].campaign_arms["c"].startswith("holdout|")


@pytest.mark.parametrize("kind", sorted(RECIPES))
def test_duplicated_and_replayed_events_never_send_twice(kind: str) -> None:
    world = world_for(kind, cap_per_user={"count": 100, "window_hours": 1})
    join(world, "cy")
    RECIPES[kind][1](world, "cy", 10)
    # The same batch delivered again (a redelivery after a crash): same offsets, same ids.
    world.offset = 1
    RECIPES[kind][1](world, "cy", 10)
    world.sweep(30 * DAY)
    assert world.sent("cy") == [kind]


@pytest.mark.parametrize("kind", sorted(RECIPES))
def test_quiet_hours_defer_to_their_end(kind: str) -> None:
    # All day quiet except 23:59-00:00 in London: whatever fires is deferred, not dropped.
    world = world_for(kind, quiet_hours={"start": "00:00", "end": "23:59"})
    join(world, "dee")
    RECIPES[kind][1](world, "dee", 10)
    assert world.sent() == []
    assert world.stat("c", "deferred") == 1
    (member,) = [m for m in world.timers if m.startswith("q:c:")]
    due = world.timers[member]
    ends = datetime.fromtimestamp(due / 1000, UTC)
    assert (ends.hour, ends.minute) == (22, 59)  # 23:59 in London (summer time)
    world.sweep((due - T0) / MINUTE - 1)
    assert world.sent() == []
    world.sweep((due - T0) / MINUTE)
    assert world.sent("dee") == [kind]
    assert world.users["dee"].promotions[0]["created_at"] == due


def test_quiet_hours_in_a_configured_zone() -> None:
    world = Store(
        {
            "c": campaign(
                {"type": "event", "event_type": "product_viewed"},
                guardrails={
                    "quiet_hours": {"start": "22:00", "end": "08:00", "timezone": "Asia/Tokyo"}
                },
            )
        }
    )
    join(world, "eli")
    night_in_tokyo = minute_of(datetime(2026, 9, 22, 14, 0, tzinfo=UTC))  # 23:00 in Tokyo
    world.view("eli", night_in_tokyo)
    assert world.sent() == []
    world.sweep(minute_of(datetime(2026, 9, 22, 23, 0, tzinfo=UTC)))  # 08:00 in Tokyo
    assert world.sent("eli") == ["event"]


@pytest.mark.parametrize("kind", ["cart_abandoned", "browse_abandoned", "event", "price_drop"])
def test_capped_per_campaign_window(kind: str) -> None:
    world = world_for(kind, cap_per_user={"count": 1, "window_hours": 24})
    join(world, "fay")
    RECIPES[kind][1](world, "fay", 10)
    RECIPES[kind][1](world, "fay", 200)  # a second, distinct firing within 24 h
    assert world.sent("fay") == [kind]
    assert world.stat("c", "capped") == 1
    RECIPES[kind][1](world, "fay", 2 * DAY)  # the window has passed
    assert world.sent("fay") == [kind, kind]


@pytest.mark.parametrize("kind", ["cart_abandoned", "browse_abandoned"])
def test_cancelled_by_a_purchase(kind: str) -> None:
    world = world_for(kind)
    join(world, "gus")
    if kind == "cart_abandoned":
        world.add("gus", 10)
    else:
        for step in range(3):
            world.view("gus", 10 + step)
    world.order("gus", 20)
    world.sweep(200)
    assert world.sent() == [] and world.timers == {}


def test_browse_abandonment_needs_enough_views_of_one_category() -> None:
    world = world_for("browse_abandoned")
    join(world, "hal")
    world.view("hal", 10, category="shoes")
    world.view("hal", 11, category="hats")
    world.view("hal", 12, category="shoes")
    world.sweep(200)
    assert world.sent() == []  # never three views of one category in a row
    world.view("hal", 300, category="bags")
    world.view("hal", 301, category="bags")
    world.add("hal", 302)  # an add-to-cart cancels it
    world.view("hal", 303, category="bags")
    world.sweep(500)
    assert world.sent() == []


def test_birthday_once_a_year_on_the_day_in_the_users_zone() -> None:
    world = world_for("birthday", cap_per_user={"count": 5, "window_hours": 1})
    world.send(
        "ivy",
        "identify",
        0,
        traits={"marketing_consent": True, "birthday": "09-30", "region": "US-CA"},
    )
    midnight_la = datetime(2026, 9, 30, 7, 0, tzinfo=UTC)  # 00:00 in Los Angeles
    world.sweep(minute_of(midnight_la) - 1)
    assert world.sent() == []
    world.sweep(minute_of(midnight_la))
    assert world.sent("ivy") == ["birthday"]
    world.view("ivy", minute_of(midnight_la) + 60)  # more activity the same day
    world.sweep(minute_of(midnight_la) + 120)
    assert world.sent("ivy") == ["birthday"]
    next_year = datetime(2027, 9, 30, 7, 0, tzinfo=UTC)
    world.sweep(minute_of(next_year))
    assert world.sent("ivy") == ["birthday", "birthday"]


def test_no_birthday_trait_no_timer() -> None:
    world = world_for("birthday")
    world.send("jo", "identify", 0, traits={"marketing_consent": True})
    assert world.timers == {} and world.users["jo"].timers == {}


def test_price_drop_only_for_recent_viewers_and_lower_prices() -> None:
    world = world_for("price_drop", cap_per_user={"count": 5, "window_hours": 1})
    for user in ("kim", "lea", "max"):
        join(world, user)
    world.view("kim", 10, item="boots")
    world.view("lea", 10, item="hat")
    world.upsert("boots", 100.0, 11)
    world.upsert("boots", 120.0, 12)  # a rise: nothing
    world.sweep(12)
    assert world.sent() == []
    world.upsert("boots", 90.0, 13)
    world.sweep(13)
    assert [(p["user_id"], p["items"]) for p in world.promotions] == [
        ("kim", [{"item_id": "boots"}])
    ]
    world.view("max", 20, item="boots")
    world.upsert("boots", 85.0, 20 + 15 * DAY)  # max viewed it more than 14 days ago
    world.sweep(20 + 15 * DAY)
    assert [p["user_id"] for p in world.promotions] == ["kim"]


def test_promotion_template_items_coupon_and_expiry() -> None:
    world = Store(
        {
            "c": campaign(
                {"type": "price_drop"},
                action={
                    "message": "{item.title} is now {item.price}, {user_id}: {coupon_code}",
                    "coupon_code": "DROP",
                    "unique_coupon": True,
                    "expires_in_hours": 2,
                },
            )
        }
    )
    join(world, "ned")
    world.view("ned", 10, item="boots")
    world.upsert("boots", 100.0, 11)
    world.upsert("boots", 80.0, 12)
    world.records = {"boots": {"title": "Trail boots", "price": 80.0}}  # the catalog record
    world.sweep(12)
    (promotion,) = world.promotions
    code = "DROP-" + promotion["promotion_id"][:8].upper()
    assert promotion["coupon_code"] == code
    assert promotion["message"] == f"Trail boots is now 80.0, ned: {code}"
    assert promotion["items"] == [{"item_id": "boots", "title": "Trail boots", "price": 80.0}]
    assert promotion["expires_at"] - promotion["created_at"] == 2 * 3_600_000
    assert world.users["ned"].promotions == [promotion]
    world.tick(12 + 121)
    assert world.users["ned"].promotions == []  # expired


def test_a_refused_reservation_takes_the_promotion_back() -> None:
    world = world_for("event")
    join(world, "oli")
    world.refuse = "budget_exhausted"
    world.view("oli", 10)
    assert world.sent() == [] and world.users["oli"].promotions == []
    assert world.users["oli"].campaign_sends == {"c": []}
    assert (world.stat("c", "sent"), world.stat("c", "budget_exhausted")) == (0, 1)
    world.refuse = None
    world.view("oli", 11)  # the engine may try again with the next firing
    assert world.sent("oli") == ["event"]


def test_channels_decide_where_a_promotion_goes() -> None:
    world = Store(
        {
            "c": campaign(
                {"type": "event", "event_type": "product_viewed"},
                action={"message": "hi", "channels": ["topic"]},
            )
        }
    )
    join(world, "pia")
    world.view("pia", 10)
    assert world.sent("pia") == ["event"]  # on the topic
    assert world.users["pia"].promotions == []  # not onsite
