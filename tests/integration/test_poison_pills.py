"""Poison pills straight on the topic: malformed, unknown-type, oversized and wrong-schema
messages all land in the DLQ with their reasons, the worker never crashes, and the
group's lag returns to 0."""

from __future__ import annotations

import asyncio
import base64

import orjson

from schemas.events import MAX_EVENT_BYTES
from serving.routers.web import consumer_lag
from tests.integration.conftest import Engine, poll
from tests.integration.test_pipeline import interaction, profile_counts


def test_poison_pills_go_to_the_dlq_and_lag_returns_to_zero(engine: Engine, unique: str) -> None:
    worker = engine.processes["worker"]
    user = f"pp-{unique}"
    good = interaction("product_viewed", user, "p")
    pills = {
        "malformed": b'{"event_id": "' + unique.encode() + b'", "type": ',
        "unknown type": orjson.dumps({**good, "event_id": f"ut-{unique}", "type": "teleported"}),
        "oversized": orjson.dumps(
            {**good, "event_id": f"big-{unique}", "properties": {"blob": "x" * MAX_EVENT_BYTES}}
        ),
        "wrong schema": orjson.dumps(
            {**good, "event_id": f"ws-{unique}", "timestamp": "yesterday"}
        ),
        "wrong property type": orjson.dumps(
            {
                **good,
                "event_id": f"wp-{unique}",
                "type": "product_added",
                "properties": {"product_id": "p", "price": "free", "quantity": 1},
            }
        ),
        "not an object": orjson.dumps([1, "two", None]),
    }
    engine.produce([(user.encode(), value) for value in pills.values()])
    engine.produce([(user.encode(), orjson.dumps(good))])
    poll(lambda: profile_counts(engine, user).get("product_viewed"), what="the event after pills")

    letters = [orjson.loads(v) for v in engine.consume_all(engine.settings.dlq_topic)]
    by_original = {base64.b64decode(letter["original_b64"]): letter for letter in letters}
    reasons = {}
    for name, value in pills.items():
        if name == "not an object":
            continue  # an array is a packed record: each element is dead-lettered on its own
        assert value in by_original, f"{name} not in the DLQ"
        reasons[name] = by_original[value]["error"]
    assert reasons["malformed"].startswith("invalid JSON")
    assert reasons["unknown type"].startswith("type:")
    assert "limit is" in reasons["oversized"]
    assert reasons["wrong schema"].startswith("timestamp")
    assert reasons["wrong property type"].startswith("properties.price")
    assert all(letter["topic"] == engine.settings.events_topic for letter in letters)
    assert worker.poll() is None, "the worker crashed"

    def lag_is_zero() -> bool | None:
        lag = asyncio.run(consumer_lag(engine.settings, engine.servers.bootstrap))
        return lag["total"] == 0 or None

    poll(lag_is_zero, timeout_s=20, what="the group's lag to return to 0")
