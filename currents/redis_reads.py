"""Execute model reads (``online_models.base.Read``) against Redis in one pipeline."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from currents.redis_client import AsyncRedis
from currents.text import as_text

Read = tuple[str, str, int]


async def fetch_reads(redis: AsyncRedis, reads: Iterable[Read]) -> dict[Read, Any]:
    """One round trip for any number of reads; results keyed by the read."""
    unique = list(dict.fromkeys(reads))
    if not unique:
        return {}
    pipe = redis.pipeline(transaction=False)
    for op, key, n in unique:
        if op == "get":
            pipe.get(key)
        elif op == "ztop":
            pipe.zrevrange(key, 0, n - 1, withscores=True)
        elif op == "hgetall":
            pipe.hgetall(key)
        else:
            raise ValueError(f"unknown read {op!r}")
    replies = await pipe.execute()
    results: dict[Read, Any] = {}
    for read, reply in zip(unique, replies, strict=True):
        op = read[0]
        if op == "ztop":
            results[read] = [(as_text(member), float(score)) for member, score in reply]
        elif op == "hgetall":
            results[read] = {as_text(k): as_text(v) for k, v in reply.items()}
        else:
            results[read] = reply
    return results
