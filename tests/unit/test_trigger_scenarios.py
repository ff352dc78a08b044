"""Trigger scenarios with a controllable clock, through the worker's batch logic."""

from __future__ import annotations

from typing import Any

from currents import keys
from currents.buckets import bucket
from currents.settings import Settings
from currents.writes import HashIncr
from schemas.events import parse_event
from schemas.profile import UserState
from streams.decode import PositionedEvent
from streams.processor import BatchInput, BatchProcessor
from triggers.campaigns import Campaign
from triggers.engine import TriggerEngine

T0 = 1_790_000_000_000
MINUTE = 60_000
SETTINGS = Settings(kafka_bootstrap="x:0", redis_url="redis://x")


def campaign(trigger: dict[str, Any], **extra: Any) -> Campaign:
    body = {
        "name": "c",
        "trigger": trigger,
        "action": {"message": "Hi {user_id}"},
        "guardrails": {"holdout": 0.0},
    }
    for key, value in extra.items():
        if key == "guardrails":
            body["guardrails"] = {**body["guardrails"], **value}
        else:
            body[key] = value
    return Campaign.model_validate(body)


class World:
    def __init__(self, campaigns: dict[str, Campaign]) -> None:
        self.processor = BatchProcessor(SETTINGS)
        self.processor.triggers = TriggerEngine(campaigns, self.processor.rules)
        self.users: dict[str, UserState] = {}
        self.offset = 0
        self.promotions: list[dict[str, Any]] = []
        self.counters: dict[tuple[str, str], int] = {}
        # What the worker's Redis side gives settle: catalog facts, and a refusal reason
        # for every promotion (a raced cap or an exhausted budget) when set.
        self.records: dict[str, dict[str, Any]] = {}
        self.refuse: str | None = None

    def send(
        self,
        user: str,
        kind: str,
        minute: float,
        now_minute: float | None = None,
        **properties: Any,
    ) -> None:
        self.offset += 1
        raw = {
            "event_id": f"{user}-{self.offset}",
            "type": kind,
            "user_id": user,
            "timestamp": T0 + int(minute * MINUTE),
            "properties": properties,
        }
        event = PositionedEvent(parse_event(raw), 0, self.offset, 0, raw)
        now = T0 + int((now_minute if now_minute is not None else minute) * MINUTE)
        self._collect(self.processor.process(BatchInput([event], self.users, {}, now, {})))

    def tick(self, minute: float) -> None:
        self._collect(
            self.processor.reevaluate(dict(self.users), T0 + int(minute * MINUTE), {}, "timer")
        )

    def _collect(self, result: Any) -> None:
        import orjson

        refused = {p["promotion_id"]: self.refuse for _, p in result.promotions if self.refuse}
        self.processor.settle(result, self.users, refused, self.records)
        self.promotions += [
            orjson.loads(m.value) for m in result.outbound if m.topic == SETTINGS.promotions_topic
        ]
        for write in result.writes:
            if isinstance(write, HashIncr) and ":campaign:" in write.key:
                slot = (write.key, write.field)
                self.counters[slot] = self.counters.get(slot, 0) + write.amount

    def consent(self, user: str, given: bool = True) -> None:
        self.send(user, "identify", 0, traits={"marketing_consent": given})

    def add(self, user: str, minute: float) -> None:
        self.send(user, "product_added", minute, product_id="p", price=60.0, quantity=1)

    def order(self, user: str, minute: float) -> None:
        self.send(
            user,
            "order_completed",
            minute,
            order_id=f"o-{user}-{minute}",
            revenue=60.0,
            currency="EUR",
            products=[{"product_id": "p", "price": 60.0}],
        )


CART = {"cart": campaign({"type": "cart_abandoned", "delay_minutes": 30})}


def test_cart_abandonment_fires_after_the_delay_exactly_once() -> None:
    world = World(CART)
    world.consent("ann")
    world.add("ann", 1)
    world.tick(30)
    assert world.promotions == []
    world.tick(31.5)
    assert [(p["campaign_id"], p["user_id"], p["trigger"]) for p in world.promotions] == [
        ("cart", "ann", "cart_abandoned")
    ]
    assert world.promotions[0]["message"] == "Hi ann"
    world.tick(60)
    assert len(world.promotions) == 1
    assert world.users["ann"].promotions[0]["promotion_id"] == world.promotions[0]["promotion_id"]


def test_a_purchase_inside_the_window_cancels_it() -> None:
    world = World(CART)
    world.consent("bob")
    world.add("bob", 1)
    world.order("bob", 10)
    world.tick(45)
    assert world.promotions == [] and world.users["bob"].timers == {}


def test_new_cart_activity_moves_the_deadline() -> None:
    world = World(CART)
    world.consent("cy")
    world.add("cy", 1)
    world.add("cy", 20)
    world.tick(40)
    assert world.promotions == []
    world.tick(51)
    assert len(world.promotions) == 1


def test_no_consent_no_promotion() -> None:
    world = World(CART)
    world.consent("dee", given=False)
    world.add("dee", 1)
    world.tick(31)
    assert world.promotions == []
    assert world.counters[(keys.campaign_stats("cart"), "no_consent")] == 1


def test_holdout_users_are_recorded_and_get_nothing() -> None:
    held = next(f"u{i}" for i in range(100) if bucket("campaign:cart", f"u{i}") < 0.5)
    world = World(
        {
            "cart": campaign(
                {"type": "cart_abandoned", "delay_minutes": 30}, guardrails={"holdout": 0.5}
            )
        }
    )
    world.consent(held)
    world.add(held, 1)
    world.tick(31)
    assert world.promotions == []
    assert world.users[held].campaign_arms == {"cart": f"holdout|{T0 + 31 * MINUTE}|0"}
    assert world.counters[(keys.campaign_stats("cart"), "holdout")] == 1


def test_priority_then_per_campaign_caps() -> None:
    low = campaign({"type": "event", "event_type": "product_viewed"}, guardrails={"priority": 1})
    high = campaign({"type": "event", "event_type": "product_viewed"}, guardrails={"priority": 5})
    world = World({"low": low, "high": high})  # default cap: 1 per campaign per 24 h
    world.consent("eve")
    for minute in (1, 2, 3):
        world.send("eve", "product_viewed", minute, product_id="p")
    # One promotion per event, highest priority first; a capped campaign yields to the next.
    assert [p["campaign_id"] for p in world.promotions] == ["high", "low"]
    assert world.counters[(keys.campaign_stats("high"), "capped")] == 2


def test_daily_cap_across_campaigns() -> None:
    often = {"count": 10, "window_hours": 1}
    world = World(
        {
            "views": campaign(
                {"type": "event", "event_type": "product_viewed"},
                guardrails={"cap_per_user": often},
            )
        }
    )
    world.consent("hal")
    for minute in (1, 2, 3, 4, 5):
        world.send("hal", "product_viewed", minute, product_id="p")
    assert len(world.promotions) == 3  # at most 3 promotions per user per day


def test_conditions_and_first_visit() -> None:
    welcome = campaign({"type": "first_visit"})
    big_cart = campaign(
        {"type": "event", "event_type": "product_added"}, condition="cart.value >= 100"
    )
    world = World({"welcome": welcome, "big": big_cart})
    world.send("fay", "identify", 0, traits={"marketing_consent": True})
    assert [p["campaign_id"] for p in world.promotions] == ["welcome"]
    world.add("fay", 1)
    assert [p["campaign_id"] for p in world.promotions] == ["welcome"]  # 60 < 100
    world.add("fay", 2)
    assert [p["campaign_id"] for p in world.promotions] == ["welcome", "big"]


def test_duplicate_events_never_send_twice() -> None:
    world = World({"views": campaign({"type": "event", "event_type": "product_viewed"})})
    world.consent("gus")
    raw = {
        "event_id": "same",
        "type": "product_viewed",
        "user_id": "gus",
        "timestamp": T0,
        "properties": {"product_id": "p"},
    }
    for offset in (10, 11):  # the same event delivered twice (a client retry)
        event = PositionedEvent(parse_event(raw), 0, offset, 0, raw)
        world._collect(world.processor.process(BatchInput([event], world.users, {}, T0, {})))
    assert len(world.promotions) == 1
