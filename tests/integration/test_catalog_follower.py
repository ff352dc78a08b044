"""The API's cached item records follow the worker's catalog announcements on a real
Redis, and fall back to short-lived records whenever the subscription drops."""

from __future__ import annotations

import asyncio

import orjson

from currents import keys
from currents.redis_client import create_redis
from online_models.base import hgetall
from serving.cache import ReadCache
from serving.catalog_cache import CatalogFollower
from tests.integration.conftest import Servers


async def _until(condition: object, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def test_announcements_evict_and_a_dropped_subscription_forgets_everything(
    servers: Servers, unique: str
) -> None:
    record = hgetall(keys.item_record(f"a-{unique}"))
    other = hgetall(keys.item_record(f"b-{unique}"))

    async def scenario() -> None:
        redis = create_redis(servers.redis_url)
        cache = ReadCache(ttl_s=0.25, catalog_ttl_s=60.0)
        follower = CatalogFollower(redis, cache)
        follower.start()
        try:
            await _until(lambda: cache.catalog_live)
            cache.lookup([])  # the clock reading stores are stamped with
            cache.store({record: {"in_stock": "1"}, other: {"in_stock": "1"}})
            await asyncio.sleep(0.4)  # past the short TTL: kept because the follower is live
            assert cache.lookup([record, other])[1] == []

            await redis.publish(keys.catalog_changes(), orjson.dumps([f"a-{unique}"]))
            await _until(lambda: cache.lookup([record])[1] == [record])
            assert cache.lookup([other])[1] == []  # only the announced item is forgotten

            # Cut the subscription: records may have missed changes, so all are dropped.
            await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            await _until(lambda: not cache.catalog_live or cache.lookup([other])[1] == [other])
            assert cache.lookup([other])[1] == [other]
            await _until(lambda: cache.catalog_live)  # and it subscribes again
        finally:
            await follower.stop()
            await redis.aclose()

    asyncio.run(scenario())
