"""Served-recommendation records: every one stored with its TTL, batched per round trip."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from serving.served_records import ServedRecords


class Batches:
    """What the route's connection was asked to run, one list per round trip."""

    def __init__(self) -> None:
        self.round_trips: list[list[tuple[Any, ...]]] = []
        self.failing = False

    async def __call__(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        await asyncio.sleep(0)  # in flight: other requests run meanwhile
        if self.failing:
            raise RedisConnectionError("down")
        self.round_trips.append([tuple(c) for c in commands])
        return [b"OK"] * len(commands)


def test_records_queued_together_share_a_round_trip_and_later_ones_follow() -> None:
    async def scenario() -> Batches:
        batches = Batches()
        served = ServedRecords(batches, ttl_s=60)
        served.store("a", b"1")
        served.store("b", b"2")
        await asyncio.sleep(0)  # the writer starts its round trip
        served.store("c", b"3")  # arrives while it is in flight
        for _ in range(5):
            await asyncio.sleep(0)
        return batches

    assert asyncio.run(scenario()).round_trips == [
        [("SET", "a", b"1", "EX", 60), ("SET", "b", b"2", "EX", 60)],
        [("SET", "c", b"3", "EX", 60)],
    ]


def test_a_failed_write_is_dropped_and_writing_resumes() -> None:
    async def scenario() -> Batches:
        batches = Batches()
        served = ServedRecords(batches, ttl_s=60)
        batches.failing = True
        served.store("lost", b"1")
        for _ in range(3):
            await asyncio.sleep(0)
        batches.failing = False
        served.store("kept", b"2")
        for _ in range(3):
            await asyncio.sleep(0)
        return batches

    assert asyncio.run(scenario()).round_trips == [[("SET", "kept", b"2", "EX", 60)]]
