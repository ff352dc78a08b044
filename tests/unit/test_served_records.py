"""Served-recommendation records: every one stored with its TTL, batched per round trip."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from serving.served_records import ServedRecords


class FakePipeline:
    def __init__(self, redis: FakeRedis) -> None:
        self.redis = redis
        self.queued: list[tuple[str, bytes, int]] = []

    def set(self, key: str, value: bytes, ex: int) -> None:
        self.queued.append((key, value, ex))

    async def execute(self) -> list[Any]:
        await asyncio.sleep(0)  # in flight: other requests run meanwhile
        if self.redis.failing:
            raise RedisConnectionError("down")
        self.redis.round_trips.append(self.queued)
        return [True] * len(self.queued)


class FakeRedis:
    def __init__(self) -> None:
        self.round_trips: list[list[tuple[str, bytes, int]]] = []
        self.failing = False

    def pipeline(self, transaction: bool) -> FakePipeline:
        assert transaction is False
        return FakePipeline(self)


def test_records_queued_together_share_a_round_trip_and_later_ones_follow() -> None:
    async def scenario() -> FakeRedis:
        redis = FakeRedis()
        served = ServedRecords(redis, ttl_s=60)  # type: ignore[arg-type]
        served.store("a", b"1")
        served.store("b", b"2")
        await asyncio.sleep(0)  # the writer starts its round trip
        served.store("c", b"3")  # arrives while it is in flight
        for _ in range(5):
            await asyncio.sleep(0)
        return redis

    redis = asyncio.run(scenario())
    assert redis.round_trips == [[("a", b"1", 60), ("b", b"2", 60)], [("c", b"3", 60)]]


def test_a_failed_write_is_dropped_and_writing_resumes() -> None:
    async def scenario() -> FakeRedis:
        redis = FakeRedis()
        served = ServedRecords(redis, ttl_s=60)  # type: ignore[arg-type]
        redis.failing = True
        served.store("lost", b"1")
        for _ in range(3):
            await asyncio.sleep(0)
        redis.failing = False
        served.store("kept", b"2")
        for _ in range(3):
            await asyncio.sleep(0)
        return redis

    assert asyncio.run(scenario()).round_trips == [[("kept", b"2", 60)]]
