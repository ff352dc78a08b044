"""Conformance, against a real Redis: every model's state round-trips unchanged, and the
model answers the same from Redis as from the in-process store."""

from __future__ import annotations

import asyncio
import functools
from urllib.parse import urlsplit, urlunsplit

import pytest

from currents.redis_client import create_redis
from currents.redis_reads import fetch_reads
from online_models.base import row_reads
from online_models.memory import MemoryStore
from streams.sink import RedisSink
from tests.integration.conftest import Servers
from tests.model_cases import catalog_writes, engine_models, queries, scripted_batch
from tests.ranking_helpers import answers

MODELS = sorted(engine_models())


@pytest.mark.parametrize("name", MODELS)
def test_state_round_trips_through_redis(servers: Servers, name: str) -> None:
    async def scenario() -> None:
        # A database of its own: global keys (trending) must hold only this test's writes.
        redis = create_redis(_own_database(servers.redis_url))
        await redis.flushdb()
        sink = RedisSink(redis)
        model_for_memory, model_for_redis = engine_models()[name], engine_models()[name]
        memory = MemoryStore()
        setup = catalog_writes()
        memory.apply(setup)
        await sink.apply(setup)
        batch = scripted_batch()
        for start in range(0, len(batch), 10):
            chunk = batch[start : start + 10]
            memory.apply(
                model_for_memory.learn(chunk, memory.fetch(model_for_memory.learn_reads(chunk)))
            )
            from_redis = await fetch_reads(redis, model_for_redis.learn_reads(chunk))
            await sink.apply(model_for_redis.learn(chunk, from_redis))
        for query in queries():
            reads = model_for_memory.candidate_reads(query)
            in_memory, in_redis = memory.fetch(reads), await fetch_reads(redis, reads)
            assert _same(in_memory, in_redis)
            items = ["a", "b", "c"]
            redis_replies = {**in_redis}
            item_reads = model_for_memory.user_reads(query) + row_reads(
                [*items, *_proposed(in_memory)], model_for_memory.item_rows
            )
            memory_items = memory.fetch(item_reads)
            redis_replies |= await fetch_reads(redis, item_reads)
            assert _same(memory_items, {r: redis_replies[r] for r in item_reads})
            proposed_memory, scores_memory = answers(model_for_memory, query, memory.fetch, items)
            proposed_redis, scores_redis = answers(
                model_for_redis,
                query,
                functools.partial(_from, redis_replies),
                items,
            )
            assert proposed_memory.keys() == proposed_redis.keys()
            assert scores_memory.keys() == scores_redis.keys()
            for item in scores_memory:
                assert scores_memory[item] == pytest.approx(scores_redis[item], rel=1e-6)
        await redis.aclose()

    asyncio.run(scenario())


def _same(memory: dict, redis: dict) -> bool:
    """Equal reads, allowing float rounding in sorted-set scores (Redis keeps doubles)."""
    assert memory.keys() == redis.keys()
    for read, value in memory.items():
        other = redis[read]
        if read[0] == "ztop":
            assert [m for m, _ in value] == [m for m, _ in other], read
            assert [s for _, s in value] == pytest.approx([s for _, s in other], rel=1e-9), read
        else:
            assert value == other, read
    return True


def _own_database(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/9"))


def _proposed(replies: dict) -> list[str]:
    """Every item the fetched sorted sets hold (what a model may propose)."""
    return sorted({m for read, value in replies.items() if read[0] == "ztop" for m, _ in value})


def _from(replies: dict, reads: list) -> dict:
    return {read: replies.get(read) for read in reads}
