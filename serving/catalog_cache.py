"""Keep this process's cached item records in step with the catalog.

The worker publishes the ids of the items whose records a batch rewrote on
``keys.catalog_changes()`` once the batch has landed (``streams/sink.py``); this task
listens and evicts them from the recommender's :class:`serving.cache.ReadCache`. Only
while the subscription is up may records stay cached for long: whenever it drops (Redis
restart, network), every cached record is forgotten and records fall back to the short
shared-read TTL until the subscription is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson

from currents import keys
from currents.redis_client import AsyncRedis
from serving.cache import ReadCache

log = logging.getLogger("currents.api.catalog")
RETRY_S = 1.0


class CatalogFollower:
    def __init__(self, redis: AsyncRedis, cache: ReadCache) -> None:
        self.redis = redis
        self.cache = cache
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self) -> None:
        failures = 0
        while True:
            pubsub: Any = None
            try:
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(keys.catalog_changes())
                # Anything cached before the subscription may have missed a change.
                self.cache.drop_catalog()
                self.cache.catalog_live = True
                log.info("following catalog changes")
                failures = 0
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self.cache.catalog_changed(orjson.loads(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # any failure: stop trusting long-lived records
                failures += 1
                if failures % 60 == 1:  # once a minute while it keeps failing
                    log.warning(
                        "catalog changes not followed; item records cached briefly",
                        extra={"error": type(error).__name__, "failures": failures},
                    )
            finally:
                self.cache.catalog_live = False
                self.cache.drop_catalog()
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
            await asyncio.sleep(RETRY_S)
