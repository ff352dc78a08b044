"""Parts too big for one script land as a journal and its scripts (real Redis): each
script applies its share once, a journal left unfinished is completed by whoever comes
next, and nothing lands twice."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson

from currents import keys
from currents.redis_client import create_redis
from currents.writes import HashSet, Put, Write, ZIncr
from streams.apply_script import APPLY_WRITES_LUA
from streams.handler import RawRecord
from streams.sink import WRITES_PER_SCRIPT, RedisSink, call_packed, complete_journals
from tests.integration.conftest import Servers
from tests.integration.test_batch_retries import losing_handler, order


def _writes(unique: str, count: int) -> tuple[list[Write], list[Write], str]:
    writes: list[Write] = [ZIncr(f"test:{unique}:z{n % 7}", f"m{n}", 1.0) for n in range(count)]
    marker = f"test:{unique}:landed"
    progress: list[Write] = [HashSet(f"test:{unique}:progress", {"0": 41}), Put(marker, b"1", 60)]
    return writes, progress, marker


async def _total(redis: Any, unique: str) -> float:
    total = 0.0
    for n in range(7):
        scored = await redis.zrange(f"test:{unique}:z{n}", 0, -1, withscores=True)
        total += sum(score for _, score in scored)
    return total


def test_a_big_part_lands_in_short_scripts(servers: Servers) -> None:
    unique = uuid.uuid4().hex[:8]

    async def scenario() -> None:
        redis = create_redis(servers.redis_url)
        sink = RedisSink(redis)
        writes, progress, marker = _writes(unique, 5 * WRITES_PER_SCRIPT)
        prepared = sink.prepare(writes, progress, marker)
        # The journal, then six calls of at most WRITES_PER_SCRIPT writes.
        assert len(prepared.packed) == 1 + 6
        held = await sink.apply_prepared(prepared)
        assert 0 < held < 1
        assert await _total(redis, unique) == 5 * WRITES_PER_SCRIPT
        assert await redis.hget(f"test:{unique}:progress", "0") == b"41"
        assert [k async for k in redis.scan_iter(match=keys.part_journal_pattern())] == []
        # Sent again (a retry after a lost reply): the marker says it landed.
        await sink.apply_prepared(prepared)
        assert await _total(redis, unique) == 5 * WRITES_PER_SCRIPT
        await redis.aclose()

    asyncio.run(scenario())


def test_an_unfinished_journal_is_completed_once(servers: Servers) -> None:
    unique = uuid.uuid4().hex[:8]

    async def scenario() -> None:
        redis = create_redis(servers.redis_url)
        sink = RedisSink(redis)
        await redis.script_load(APPLY_WRITES_LUA)
        writes, progress, marker = _writes(unique, 3 * WRITES_PER_SCRIPT)
        prepared = sink.prepare(writes, progress, marker)
        # The worker died after its journal and the first call.
        await call_packed(redis, prepared.packed[:2])
        assert await _total(redis, unique) == WRITES_PER_SCRIPT
        assert await redis.hget(f"test:{unique}:progress", "0") is None
        assert await complete_journals(redis) >= 1
        assert await _total(redis, unique) == 3 * WRITES_PER_SCRIPT
        assert await redis.hget(f"test:{unique}:progress", "0") == b"41"
        # Nothing is left to complete, and the dead worker's calls, were they to arrive
        # late, apply nothing.
        assert await complete_journals(redis) == 0
        await call_packed(redis, prepared.packed)
        assert await _total(redis, unique) == 3 * WRITES_PER_SCRIPT
        await redis.aclose()

    asyncio.run(scenario())


def test_a_lost_reply_of_a_journalled_part_does_not_apply_it_twice(servers: Servers) -> None:
    unique = uuid.uuid4().hex[:8]

    async def scenario() -> None:
        redis = create_redis(servers.redis_url)
        sink, handler = losing_handler(servers, redis, lose=1)
        before = int(await redis.hget(keys.counters(), "type:order_completed") or 0)
        # Two 80-line orders: hundreds of writes (pairs, counters, records), one part.
        records = [RawRecord(orjson.dumps(order(unique, "a", n, 80)), 0, n) for n in (1, 2)]
        prepared_sizes: list[int] = []
        original = sink.prepare

        def prepare(*args: object) -> object:
            prepared = original(*args)  # type: ignore[arg-type]
            prepared_sizes.append(len(prepared.packed))
            return prepared

        sink.prepare = prepare  # type: ignore[method-assign,assignment]
        stats = await handler.handle(records)
        assert stats.applied == 2
        assert max(prepared_sizes) > 2  # it did go as a journal
        assert sink.applied == 1  # landed, reply lost, the retry found the marker
        after = int(await redis.hget(keys.counters(), "type:order_completed") or 0)
        assert after - before == 2
        await redis.aclose()

    asyncio.run(scenario())
