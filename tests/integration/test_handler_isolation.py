"""A bug must not become a poison pill: the batch handler, on a real Redis, applies the
good events of a batch whose processing fails and dead-letters the one that fails."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from currents import keys
from currents.redis_client import create_redis
from currents.settings import Settings
from schemas.profile import UserState
from streams.handler import BatchHandler, RawRecord
from streams.processor import BatchInput, BatchProcessor, BatchResult, Outbound
from streams.sink import RedisSink
from tests.integration.conftest import Servers


class BuggyProcessor(BatchProcessor):
    """Fails on one event id, as a bug in the logic would."""

    def process(self, batch: BatchInput) -> BatchResult:
        if any(p.event.event_id.startswith("boom") for p in batch.events):
            raise ZeroDivisionError("a bug")
        return super().process(batch)


def test_a_failing_event_is_dead_lettered_and_the_rest_applied(servers: Servers) -> None:
    unique = uuid.uuid4().hex[:8]
    sent: list[Outbound] = []

    async def send(messages: Sequence[Outbound]) -> None:
        sent.extend(messages)

    def view(event_id: str, user: str) -> bytes:
        event: dict[str, Any] = {
            "event_id": event_id,
            "type": "product_viewed",
            "user_id": user,
            "timestamp": 1_790_000_000_000,
            "properties": {"product_id": "p"},
        }
        return orjson.dumps(event)

    async def scenario() -> None:
        redis = create_redis(servers.redis_url)
        settings = Settings(kafka_bootstrap="unused:0", redis_url=servers.redis_url)
        handler = BatchHandler(
            RedisSink(redis), BuggyProcessor(settings), send, dlq_topic="dlq", source_topic="events"
        )
        records = [
            RawRecord(view(f"ok-1-{unique}", f"a-{unique}"), 0, 1),
            RawRecord(view(f"boom-{unique}", f"b-{unique}"), 0, 2),
            RawRecord(view(f"ok-2-{unique}", f"c-{unique}"), 0, 3),
        ]
        stats = await handler.handle(records)
        assert (stats.applied, stats.dead_letters) == (2, 1)
        for user, expected in ((f"a-{unique}", 1), (f"b-{unique}", None), (f"c-{unique}", 1)):
            state = UserState.from_bytes(await redis.get(keys.user_profile(user)))
            assert state.counts.get("product_viewed") == expected
        letters = [orjson.loads(m.value) for m in sent if m.topic == "dlq"]
        assert [(x["offset"], x["error"]) for x in letters] == [
            (2, "internal error: ZeroDivisionError: a bug")
        ]
        await redis.aclose()

    asyncio.run(scenario())
