"""Store served-recommendation records (for attribution) without a round trip per request.

Every response's record is queued; one task writes everything queued in a single
pipeline, and whatever arrives while that pipeline is in flight goes in the next one. A
SET per request cost a task and a round trip of redis-py overhead each, about as much
as a cached recommendation's ranking; the records land as soon as before under light
load and in batches under heavy load. Failures are logged and the records dropped, as
the per-request writes did.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from currents.redis_client import AsyncRedis

log = logging.getLogger("currents.api.recommend")


class ServedRecords:
    def __init__(self, redis: AsyncRedis, ttl_s: int) -> None:
        self.redis = redis
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
                    pipe = self.redis.pipeline(transaction=False)
                    for key, record in batch:
                        pipe.set(key, record, ex=self.ttl_s)
                    await pipe.execute()
                except (RedisError, OSError) as error:
                    log.warning(
                        "recommendation records not stored",
                        extra={"error": type(error).__name__, "records": len(batch)},
                    )
        finally:
            self._writer = None
