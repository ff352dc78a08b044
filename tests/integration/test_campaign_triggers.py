"""A cart-abandonment campaign through the real API, broker, worker and Redis."""

from __future__ import annotations

import time
from typing import Any

import orjson

from tests.integration.conftest import Engine, poll

DELAY_S = 3


def now_ms() -> int:
    return int(time.time() * 1000)


def events_for(user: str, unique: str, *, buy: bool) -> list[dict[str, Any]]:
    ts = now_ms()
    events = [
        {
            "event_id": f"{user}-id",
            "type": "identify",
            "user_id": user,
            "timestamp": ts,
            "properties": {"traits": {"marketing_consent": True}},
        },
        {
            "event_id": f"{user}-add",
            "type": "product_added",
            "user_id": user,
            "timestamp": ts + 1,
            "properties": {"product_id": f"p-{unique}", "price": 80.0, "quantity": 1},
        },
    ]
    if buy:
        events.append(
            {
                "event_id": f"{user}-order",
                "type": "order_completed",
                "user_id": user,
                "timestamp": ts + 1000,
                "properties": {
                    "order_id": f"o-{user}",
                    "revenue": 80.0,
                    "currency": "EUR",
                    "products": [{"product_id": f"p-{unique}", "price": 80.0}],
                },
            }
        )
    return events


def promotions(engine: Engine, user: str) -> list[dict[str, Any]]:
    with engine.client("read") as client:
        return client.get(f"/v1/users/{user}/promotions").json()["promotions"]  # type: ignore[no-any-return]


def test_cart_abandonment_fires_once_for_the_abandoner_only(engine: Engine, unique: str) -> None:
    campaign = {
        "name": "Cart abandonment",
        "trigger": {"type": "cart_abandoned", "delay_minutes": DELAY_S / 60},
        "condition": "cart.value >= 50",
        "action": {
            "message": "Your cart ({cart.value}) is waiting, {user_id}",
            "coupon_code": "CART",
            "unique_coupon": True,
            "discount_percent": 10,
        },
        "guardrails": {"holdout": 0},
    }
    with engine.client("admin") as client:
        assert client.put(f"/v1/campaigns/cart-{unique}", json=campaign).status_code == 201
    try:
        time.sleep(1.5)  # workers reload campaigns within a second
        abandoner, buyer = f"abandoner-{unique}", f"buyer-{unique}"
        assert engine.post_events(events_for(abandoner, unique, buy=False)).status_code == 202
        assert engine.post_events(events_for(buyer, unique, buy=True)).status_code == 202
        sent_at = time.monotonic()
        found = poll(
            lambda: promotions(engine, abandoner),
            timeout_s=DELAY_S + 15,
            what="the cart-abandonment promotion",
        )
        assert time.monotonic() - sent_at >= DELAY_S - 0.5  # not before the delay
        assert len(found) == 1
        promotion = found[0]
        assert promotion["campaign_id"] == f"cart-{unique}"
        assert promotion["message"] == f"Your cart (80.0) is waiting, {abandoner}"
        assert promotion["coupon_code"].startswith("CART-")
        time.sleep(2)  # well past the buyer's deadline, and the sweep ran again
        assert promotions(engine, buyer) == []
        assert len(promotions(engine, abandoner)) == 1
        on_topic = [
            orjson.loads(v) for v in engine.consume_all(engine.settings.promotions_topic, 2)
        ]
        mine = [p for p in on_topic if p["campaign_id"] == f"cart-{unique}"]
        assert [p["user_id"] for p in mine] == [abandoner]
    finally:
        with engine.client("admin") as client:
            client.delete(f"/v1/campaigns/cart-{unique}")
