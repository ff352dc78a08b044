"""Retries are honest (real Redis): a part whose reply is lost after its writes landed is
not applied again, and a batch of heavy records is cut into parts by cost, each landing
once, with the offsets written by the last part only."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError

from currents import keys
from currents.redis_client import create_redis
from currents.settings import Settings
from schemas.profile import UserState
from streams.handler import BatchHandler, RawRecord
from streams.processor import BatchProcessor, Outbound
from streams.sink import Prepared, RedisSink
from tests.integration.conftest import Servers


class LosingReplies(RedisSink):
    """Applies each part, then loses the reply of the first ``lose`` of them, as a
    network timeout after the server ran the script would."""

    def __init__(self, redis: Any, lose: int) -> None:
        super().__init__(redis)
        self.lose = lose
        self.applied = 0

    async def apply_prepared(self, prepared: Prepared) -> float:
        held = await super().apply_prepared(prepared)
        self.applied += 1
        if self.lose:
            self.lose -= 1
            raise RedisConnectionError("reply lost")
        return held


def order(unique: str, user: str, number: int, lines: int) -> dict[str, Any]:
    return {
        "event_id": f"o-{unique}-{user}-{number}",
        "type": "order_completed",
        "user_id": f"{user}-{unique}",
        "timestamp": 1_790_000_000_000 + number,
        "properties": {
            "order_id": f"{unique}-{user}-{number}",
            "products": [
                {"product_id": f"p{i}", "price": 1.0, "quantity": 1, "category": "c"}
                for i in range(lines)
            ],
            "revenue": float(lines),
            "currency": "EUR",
        },
    }


async def send_nothing(messages: Sequence[Outbound]) -> None:
    return None


def losing_handler(
    servers: Servers, redis: Any, lose: int, **options: Any
) -> tuple[LosingReplies, BatchHandler]:
    """A handler on real Redis whose sink loses the replies of the first ``lose`` parts."""
    settings = Settings(kafka_bootstrap="unused:0", redis_url=servers.redis_url)
    sink = LosingReplies(redis, lose=lose)
    handler = BatchHandler(
        sink, BatchProcessor(settings), send_nothing, dlq_topic="d", source_topic="e", **options
    )
    handler.max_backoff_s = 0.01
    return sink, handler


def test_a_lost_reply_does_not_apply_a_landed_part_twice(servers: Servers) -> None:
    unique = uuid.uuid4().hex[:8]

    async def scenario() -> None:
        redis = create_redis(servers.redis_url)
        sink, handler = losing_handler(servers, redis, lose=1)
        before = int(await redis.hget(keys.counters(), "type:order_completed") or 0)
        record = RawRecord(orjson.dumps(order(unique, "a", 1, 3)), 0, 1)
        stats = await handler.handle([record])
        assert stats.applied == 1
        # Applied once, its reply lost, then the retry found the marker and sent nothing.
        assert sink.applied == 1
        after = int(await redis.hget(keys.counters(), "type:order_completed") or 0)
        assert after - before == 1
        state = UserState.from_bytes(await redis.get(keys.user_profile(f"a-{unique}")))
        assert state.counts["order_completed"] == 1
        await redis.aclose()

    asyncio.run(scenario())


def test_a_heavy_batch_lands_in_cost_bounded_parts_with_offsets_last(servers: Servers) -> None:
    unique = uuid.uuid4().hex[:8]
    progress = f"test-progress-{unique}"

    async def scenario() -> None:
        redis = create_redis(servers.redis_url)
        sink, handler = losing_handler(
            servers, redis, lose=0, progress_key=progress, batch_cost=100
        )
        # One packed record of 40 orders of 9 lines: cost 400, so at least 4 parts.
        events = [order(unique, f"u{n % 7}", n, 9) for n in range(40)]
        stats = await handler.handle([RawRecord(orjson.dumps(events), 2, 17)])
        assert stats.applied == 40
        assert sink.applied >= 4
        assert await redis.hgetall(progress) == {b"2": b"17"}
        counts = []
        for n in range(7):
            blob = await redis.get(keys.user_profile(f"u{n}-{unique}"))
            counts.append(UserState.from_bytes(blob).counts["order_completed"])
        assert counts == [6, 6, 6, 6, 6, 5, 5]
        await redis.delete(progress)
        await redis.aclose()

    asyncio.run(scenario())


def test_parts_shrink_until_their_writes_hold_redis_briefly(servers: Servers) -> None:
    """The apply script reports how long it ran; a part whose writes held Redis past the
    budget makes the next parts smaller (API reads wait behind every script)."""
    unique = uuid.uuid4().hex[:8]

    async def scenario() -> None:
        redis = create_redis(servers.redis_url)
        sink, handler = losing_handler(
            servers, redis, lose=0, batch_cost=2_000, max_script_s=0.000001
        )
        assert handler.sizer.limit == 500
        events = [order(unique, f"u{n % 13}", n, 20) for n in range(60)]
        stats = await handler.handle([RawRecord(orjson.dumps(events), 0, 1)])
        assert stats.applied == 60
        # 60 orders of 20 lines wrote hundreds of pairs per part: far past 1 µs.
        assert handler.sizer.limit < 100
        assert sink.applied > 3
        await redis.aclose()

    asyncio.run(scenario())
