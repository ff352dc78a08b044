"""The Redis store: reads the state a batch needs and applies a batch of writes.

Reads are one pipelined round trip; writes are one Lua script call on a single Redis, so
a batch lands whole or not at all (streams/apply_script.py). A Redis Cluster cannot run
one script across slots, so there the writes go as one script call per slot, pipelined.
Either way a failed flush raises, and the worker does not ack.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha1
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import NoScriptError, RedisError, ResponseError

from currents import keys
from currents.redis_client import AsyncRedis, run_scripts
from currents.redis_reads import QueuedGets, get_many
from currents.text import as_text
from currents.writes import Write
from schemas.profile import UserState
from streams.apply_script import APPLY_WRITES_LUA, encode, pack_apply
from streams.processor import CatalogEntry

log = logging.getLogger("currents.worker.sink")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A batch's writes ready to send: one packed EVALSHA on a single Redis, or the
    writes and progress to split per slot on a Cluster."""

    packed: bytes | None
    writes: tuple[Write, ...]
    progress: tuple[Write, ...]


class RedisSink:
    def __init__(self, redis: AsyncRedis) -> None:
        self.redis = redis
        self.transactional = not isinstance(redis, RedisCluster)
        self._script: Any = None
        self._sha: str | None = None

    async def read(
        self, user_ids: Sequence[str], item_ids: Sequence[str]
    ) -> tuple[dict[str, UserState], dict[str, CatalogEntry]]:
        """User state blobs and catalog entries, in one round trip."""
        return parse_state(await self.fetch_state(user_ids, item_ids))

    async def fetch_state(self, user_ids: Sequence[str], item_ids: Sequence[str]) -> FetchedState:
        """The raw replies :func:`parse_state` turns into users and catalog entries (the
        worker parses them off the event loop)."""
        if not user_ids and not item_ids:
            return FetchedState((), (), [], [])
        pipe = self.redis.pipeline(transaction=False)
        profiles = QueuedGets(pipe, [keys.user_profile(user_id) for user_id in user_ids])
        for item_id in item_ids:
            pipe.hmget(keys.item_record(item_id), ["ts", "category", "brand"])
        replies = await pipe.execute()
        blobs = profiles.values(replies[: profiles.replies])
        return FetchedState(tuple(user_ids), tuple(item_ids), blobs, replies[profiles.replies :])

    async def read_erasures(self, user_ids: Sequence[str]) -> dict[str, int]:
        """Erasure times (epoch ms) of the users that have an erasure marker."""
        if not user_ids:
            return {}
        replies = await get_many(self.redis, [keys.user_erased(u) for u in user_ids])
        return {u: int(at) for u, at in zip(user_ids, replies, strict=True) if at is not None}

    async def read_recommendations(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        blobs = await get_many(self.redis, [keys.recommendation(i) for i in ids])
        return {i: orjson.loads(blob) for i, blob in zip(ids, blobs, strict=True) if blob}

    async def read_users(self, user_ids: Sequence[str]) -> dict[str, UserState]:
        users, _ = await self.read(user_ids, ())
        return users

    async def announce_catalog_changes(self, item_ids: Sequence[str]) -> None:
        """Tell API processes which catalog records changed, after they were written.

        Best effort: the batch has landed, so a failure here is logged, not retried. An API
        process keeps a record at most ``CATALOG_TTL_S`` without an announcement, and drops
        every cached record whenever its subscription was interrupted."""
        try:
            await self.redis.publish(keys.catalog_changes(), orjson.dumps(list(item_ids)))
        except (RedisError, OSError) as error:
            log.warning("catalog change not announced", extra={"error": type(error).__name__})

    async def refresh_tertiles(self, categories: Sequence[str]) -> None:
        """Recompute the price tertiles of ``categories`` (two round trips)."""
        if not categories:
            return
        pipe = self.redis.pipeline(transaction=False)
        for category in categories:
            pipe.zcard(keys.category_prices(category))
        sizes = await pipe.execute()
        pipe = self.redis.pipeline(transaction=False)
        for category, size in zip(categories, sizes, strict=True):
            for rank in (size // 3, (2 * size) // 3):
                pipe.zrange(keys.category_prices(category), rank, rank, withscores=True)
        replies = await pipe.execute()
        tertiles: dict[str, str] = {}
        for index, (category, size) in enumerate(zip(categories, sizes, strict=True)):
            low, high = replies[2 * index], replies[2 * index + 1]
            if size and low and high:
                tertiles[category] = f"{low[0][1]},{high[0][1]}"
        if tertiles:
            await self.redis.hset(keys.price_tertiles(), mapping=tertiles)  # type: ignore[arg-type]

    async def refresh_all_tertiles(self) -> None:
        categories = [
            keys.category_of_prices_key(as_text(key))
            async for key in self.redis.scan_iter(match=keys.category_prices_pattern(), count=1000)
        ]
        await self.refresh_tertiles(sorted(categories))

    async def read_tertiles(self) -> dict[str, tuple[float, float]]:
        raw = await self.redis.hgetall(keys.price_tertiles())
        return parse_tertiles(raw)

    async def apply(self, writes: Sequence[Write], progress: Sequence[Write] = ()) -> None:
        """Apply ``writes`` in order: one script call on a single Redis (atomic); on a
        Cluster, one call per hash slot, pipelined (atomic per slot only).

        ``progress`` (the consumer offsets these writes cover) lands in the same script
        on a single Redis; on a Cluster it goes after the writes have all landed, so it
        is never ahead of them."""
        await self.apply_prepared(self.prepare(writes, progress))

    def prepare(self, writes: Sequence[Write], progress: Sequence[Write] = ()) -> Prepared:
        """Encode the writes for :meth:`apply_prepared`. Pure CPU, in proportion to the
        writes, so the worker runs it off the event loop."""
        if self._sha is None:
            self._sha = sha1(APPLY_WRITES_LUA.encode()).hexdigest()
        if not writes and not progress:
            return Prepared(None, (), ())
        if self.transactional:
            return Prepared(pack_apply(self._sha, [*writes, *progress]), (), ())
        return Prepared(None, tuple(writes), tuple(progress))

    async def apply_prepared(self, prepared: Prepared) -> float:
        """Apply; returns the longest time one script call held a Redis server, in
        seconds (every other client of that server waited meanwhile)."""
        if self._script is None:
            self._script = self.redis.register_script(APPLY_WRITES_LUA)
        if prepared.packed is not None:
            return script_seconds(await self._call_packed(prepared.packed))
        return max(
            await self._apply_per_slot(prepared.writes),
            await self._apply_per_slot(prepared.progress),
        )

    async def _apply_per_slot(self, writes: Sequence[Write]) -> float:
        if not writes:
            return 0.0
        by_slot: dict[int, list[Write]] = defaultdict(list)
        for write in writes:
            by_slot[key_slot(write.key.encode())].append(write)
        calls = []
        for slot_writes in by_slot.values():
            keys_, args = encode(slot_writes)
            calls.append((self._script, keys_, args))
        return max(script_seconds(reply) for reply in await run_scripts(self.redis, calls))

    async def _call_packed(self, packed: bytes) -> Any:
        """Send one pre-packed EVALSHA; load the script once if the server lacks it."""
        try:
            return await self._send_packed(packed)
        except NoScriptError:
            await self.redis.script_load(APPLY_WRITES_LUA)
            return await self._send_packed(packed)

    async def _send_packed(self, packed: bytes) -> Any:
        assert isinstance(self.redis, aioredis.Redis)
        pool = self.redis.connection_pool
        connection = await pool.get_connection()
        try:
            await connection.send_packed_command(packed)
            return await connection.read_response()
        except ResponseError:
            raise  # the server answered: the connection is fine
        except BaseException:
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)


def script_seconds(reply: Any) -> float:
    """How long an apply script ran, from its reply ``[applied, microseconds]``."""
    return int(reply[1]) / 1e6


@dataclass(frozen=True, slots=True)
class FetchedState:
    """Profile blobs and catalog replies as Redis sent them."""

    user_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    blobs: list[Any]
    items: list[Any]


def parse_state(
    fetched: FetchedState,
) -> tuple[dict[str, UserState], dict[str, CatalogEntry]]:
    """Users' state (decompressed, decoded) and catalog entries from ``fetched``."""
    users = {
        user_id: UserState.from_bytes(blob)
        for user_id, blob in zip(fetched.user_ids, fetched.blobs, strict=True)
    }
    catalog = {
        item_id: CatalogEntry(int(ts) if ts is not None else None, _text(category), _text(brand))
        for item_id, (ts, category, brand) in zip(fetched.item_ids, fetched.items, strict=True)
    }
    return users, catalog


def _text(value: bytes | None) -> str | None:
    return value.decode() if value else None


def parse_tertiles(raw: dict[Any, Any]) -> dict[str, tuple[float, float]]:
    parsed = {}
    for category, value in raw.items():
        category = category.decode() if isinstance(category, bytes) else category
        value = value.decode() if isinstance(value, bytes) else value
        low, high = value.split(",")
        parsed[category] = (float(low), float(high))
    return parsed
