"""fetch_reads answers exactly what redis-py's own per-key commands answer, in both
protocols: same members, same float scores, same values for missing keys."""

from __future__ import annotations

import asyncio
import math
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from currents.redis_client import AsyncRedis, create_redis
from currents.redis_reads import fetch_reads
from currents.text import as_text
from online_models.base import Read, get, hgetall, ztop
from tests.integration.conftest import Servers

SCORES = [1.0, 0.1, 1 / 3, 5.655317825143266e54, 2.0**-512 * 7.3, -2.5, 1e-300, math.inf, 0.0]


def _reads() -> list[Read]:
    return [
        ztop("{i:a}:co:viewed:g1", 120),
        ztop("{i:a}:co:viewed:g1", 3),
        ztop("{i:absent}:co:viewed:g1", 120),
        ztop("currents:pop:short:global:g7", 100),
        get("{i:a}:mf"),
        get("{i:absent}:mf"),
        get("{u:é}:mf"),
        hgetall("{i:a}:item"),
        hgetall("{i:absent}:item"),
    ]


async def _populate(redis: AsyncRedis) -> None:
    await redis.zadd("{i:a}:co:viewed:g1", {f"m{k}": s for k, s in enumerate(SCORES)})
    await redis.zadd("currents:pop:short:global:g7", {f"sku-{k:03d}": k / 7 for k in range(150)})
    await redis.set("{i:a}:mf", bytes(range(64)))
    await redis.set("{u:é}:mf", b"\x00\xff")
    await redis.hset("{i:a}:item", mapping={"price": "9.5", "category": "bücher"})


async def _one_by_one(redis: AsyncRedis, reads: list[Read]) -> dict[Read, Any]:
    """The reference: redis-py's own command for each read."""
    results: dict[Read, Any] = {}
    for read in reads:
        op, key, n = read
        if op == "ztop":
            reply = await redis.zrevrange(key, 0, n - 1, withscores=True)
            results[read] = [(as_text(member), float(score)) for member, score in reply]
        elif op == "hgetall":
            reply = await redis.hgetall(key)
            results[read] = {as_text(k): as_text(v) for k, v in reply.items()}
        else:
            results[read] = await redis.get(key)
    return results


@pytest.mark.parametrize("protocol", [3, 2])
def test_fetch_reads_matches_redis_py_commands(servers: Servers, protocol: int) -> None:
    async def scenario() -> None:
        parts = urlsplit(servers.redis_url)
        redis = create_redis(urlunsplit(parts._replace(path="/8")), protocol=protocol)
        try:
            await redis.flushdb()
            await _populate(redis)
            reads = _reads()
            fetched = await fetch_reads(redis, reads)
            assert fetched == await _one_by_one(redis, reads)
            assert [s for _, s in fetched[reads[0]]] == sorted(SCORES, reverse=True)
        finally:
            await redis.flushdb()
            await redis.aclose()

    asyncio.run(scenario())
