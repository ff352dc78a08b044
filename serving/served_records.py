"""Store served-recommendation records (for attribution) without a round trip per request.

Every response's record is queued; one task writes everything queued in a single
pipeline (through the route's lean connection, currents/redis_lean.py), and whatever
arrives while that pipeline is in flight goes in the next one. A SET per request cost a
task and a round trip of redis-py overhead each, about as much as a cached
recommendation's ranking; the records land as soon as before under light load and in
batches under heavy load. Failures are logged and the records dropped, as the
per-request writes did.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.exceptions import RedisError

Batch = Callable[[Sequence[Sequence[Any]]], Awaitable[list[Any]]]

log = logging.getLogger("currents.api.recommend")


class ServedRecords:
    def __init__(self, batch: Batch, ttl_s: int) -> None:
        self.batch = batch
        self.ttl_s = ttl_s
        self._queued: list[tuple[str, bytes]] = []
        self._writer: asyncio.Task[None] | None = None

    def store(self, key: str, record: bytes) -> None:
        self._queued.append((key, record))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_queued())

    async def _write_queued(self) -> None:
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                try:
                    await self.batch(
                        [("SET", key, record, "EX", self.ttl_s) for key, record in batch]
                    )
                except (RedisError, OSError) as error:
                    log.warning(
                        "recommendation records not stored",
                        extra={"error": type(error).__name__, "records": len(batch)},
                    )
        finally:
            self._writer = None
