"""The lean connection (currents/redis_lean.py) against the real Redis: the same values as
redis-py's MGET under many concurrent calls, errors as redis-py's exceptions, and a
connection that recovers after Redis drops it or stops answering."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from currents.redis_client import create_redis
from currents.redis_lean import LeanConnection, lean_connection
from tests.integration.conftest import Servers


def _reader(servers: Servers, timeout_s: float = 2.0) -> LeanConnection:
    reader = lean_connection(servers.redis_url, {}, timeout_s=timeout_s)
    if reader is None:
        pytest.fail(f"no lean reader for {servers.redis_url}: the API would use redis-py")
    return reader


def test_concurrent_mgets_get_their_own_values(servers: Servers) -> None:
    run = uuid.uuid4().hex[:8]
    names = [f"{{u:lean-{run}-{i}}}:p" for i in range(300)]
    plain = redis.Redis.from_url(servers.redis_url)
    plain.mset({name: f"value-{i}".encode() * (i % 7 + 1) for i, name in enumerate(names[::2])})

    async def scenario() -> None:
        reader, client = _reader(servers), create_redis(servers.redis_url)
        asked = [[names[i], names[(i * 7 + 1) % len(names)]] for i in range(len(names))]
        lean = await asyncio.gather(*(reader.mget(pair) for pair in asked))
        reference = [await client.mget(pair) for pair in asked]
        assert lean == reference
        assert any(v is None for pair in lean for v in pair)  # missing keys are None
        await reader.aclose()
        await client.aclose()

    asyncio.run(scenario())
    plain.delete(*names[::2])


def test_error_replies_raise_and_the_connection_goes_on(servers: Servers) -> None:
    key = f"{{u:lean-{uuid.uuid4().hex[:8]}}}:h"
    plain = redis.Redis.from_url(servers.redis_url)
    plain.hset(key, "a", "1")

    async def scenario() -> None:
        reader = _reader(servers)
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await reader.call("GET", key)
        assert await reader.mget([key + "-absent"]) == [None]
        await reader.aclose()

    asyncio.run(scenario())
    plain.delete(key)


def test_a_dropped_connection_fails_in_flight_calls_and_reconnects(servers: Servers) -> None:
    plain = redis.Redis.from_url(servers.redis_url)

    async def scenario() -> None:
        reader = _reader(servers)
        own_id = await reader.call("CLIENT", "ID")
        plain.client_kill_filter(_id=own_id)
        with pytest.raises(RedisConnectionError):
            for _ in range(50):  # the kill reaches this side within a few calls
                await reader.mget(["{u:lean-x}:p"])
                await asyncio.sleep(0.01)
        assert await reader.mget(["{u:lean-x}:p"]) == [None]
        assert await reader.call("CLIENT", "ID") != own_id
        await reader.aclose()

    asyncio.run(scenario())


def test_a_redis_that_stops_answering_times_out_then_recovers(servers: Servers) -> None:
    plain = redis.Redis.from_url(servers.redis_url)

    async def scenario() -> None:
        reader = _reader(servers, timeout_s=0.2)
        assert await reader.mget(["{u:lean-y}:p"]) == [None]
        plain.client_pause(600)  # every client's commands wait 0.6 s
        try:
            with pytest.raises(RedisTimeoutError):
                await reader.mget(["{u:lean-y}:p"])
        finally:
            plain.client_unpause()
        assert await reader.mget(["{u:lean-y}:p"]) == [None]
        await reader.aclose()

    asyncio.run(scenario())


def test_cluster_and_socket_urls_keep_redis_py() -> None:
    assert lean_connection("redis://127.0.0.1:7000/0?cluster=1", {}) is None
    assert lean_connection("unix:///tmp/redis.sock", {}) is None
    reader = lean_connection("redis://user:p%40ss@db.example:6390/4", {})
    assert reader is not None
    assert (reader.host, reader.port, reader.db, reader.username, reader.password) == (
        "db.example",
        6390,
        4,
        "user",
        "p@ss",
    )


def test_batches_share_one_write_with_concurrent_reads_and_apply_in_order(
    servers: Servers,
) -> None:
    run = uuid.uuid4().hex[:8]
    names = [f"{{u:lean-batch-{run}-{i}}}:r" for i in range(50)]
    plain = redis.Redis.from_url(servers.redis_url)

    async def scenario() -> None:
        lean = _reader(servers)
        writes = lean.batch([("SET", name, str(i), "EX", 60) for i, name in enumerate(names)])
        reads = [lean.mget([name]) for name in names]
        # Queued in the same loop iteration: the batch's SETs go out before the reads.
        replies, *read = await asyncio.gather(writes, *reads)
        assert replies == [b"OK"] * len(names)
        assert read == [[str(i).encode()] for i in range(len(names))]
        added, ttl = await lean.batch([("SADD", names[0] + "s", "a", "b"), ("TTL", names[0])])
        assert added == 2 and 55 <= ttl <= 60
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await lean.batch([("GET", names[0] + "s")])
        assert await lean.mget([names[1]]) == [b"1"]  # the connection goes on
        await lean.aclose()

    asyncio.run(scenario())
    assert plain.ttl(names[-1]) > 0
    plain.delete(*names, names[0] + "s")
