"""The Redis store: reads the state a batch needs and applies a batch of writes.

Reads are one pipelined round trip. On a single Redis a part's writes land whole or not at
all (streams/apply_script.py): up to ``WRITES_PER_SCRIPT`` of them in one Lua script
call; more go as a **journal** and its scripts. Redis runs one script at a time and
serves nobody meanwhile, so one script of thousands of writes made every API read wait
(recommendations p99 followed the scripts' p99). A journal is a hash of the part's script
calls, written in one command; each call applies its share only while its entry is in
the journal and removes it in the same script. Once the journal is written the part is
bound to land: the worker sends the calls in one round trip, and whoever is assigned the
partitions next completes any journal left by a worker that died
(:func:`complete_journals`, before it reads the consumer progress, which the last call
carries). A Redis Cluster cannot run one script across slots, so there the writes go as
one script call per slot, pipelined. Either way a failed flush raises, and the worker
does not ack.
"""

from __future__ import annotations

import logging
import uuid
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
from currents.subjects import Subjects, load_subjects
from currents.text import as_text
from currents.writes import Write
from schemas.profile import UserState
from streams.apply_script import (
    APPLY_WRITES_LUA,
    JOURNAL_LUA,
    encode,
    pack_apply,
    pack_journal,
)
from streams.processor import CatalogEntry

log = logging.getLogger("currents.worker.sink")
# About 1-3 ms of Redis time: a sorted-set increment on a small (listpack) neighbour list
# costs Redis ~10 µs, most writes far less.
WRITES_PER_SCRIPT = 200
APPLY_SHA = sha1(APPLY_WRITES_LUA.encode()).hexdigest()
JOURNAL_SHA = sha1(JOURNAL_LUA.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Prepared:
    """A batch's writes ready to send: on a single Redis, packed commands to send in
    order (one EVALSHA, or a journal and its EVALSHAs); on a Cluster, the writes and
    progress to split per slot."""

    packed: tuple[bytes, ...]
    writes: tuple[Write, ...]
    progress: tuple[Write, ...]


class RedisSink:
    def __init__(self, redis: AsyncRedis, subject_secret: str = "") -> None:
        self.redis = redis
        self.transactional = not isinstance(redis, RedisCluster)
        self._script: Any = None
        self._subject_secret = subject_secret
        self._subjects: Subjects | None = None

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
        if self._subjects is None:
            self._subjects = await load_subjects(self.redis, self._subject_secret)
        subject = self._subjects.of
        replies = await get_many(self.redis, [keys.erasure_marker(subject(u)) for u in user_ids])
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

    def prepare(
        self, writes: Sequence[Write], progress: Sequence[Write] = (), marker: str | None = None
    ) -> Prepared:
        """Encode the writes for :meth:`apply_prepared`. Pure CPU, in proportion to the
        writes, so the worker runs it off the event loop. ``marker``, a key the writes
        put, says the part has landed: its journal is not written again once it has."""
        if not writes and not progress:
            return Prepared((), (), ())
        if not self.transactional:
            return Prepared((), tuple(writes), tuple(progress))
        every = [*writes, *progress]
        if len(every) <= WRITES_PER_SCRIPT:
            return Prepared((pack_apply(APPLY_SHA, every),), (), ())
        journal = keys.part_journal(uuid.uuid4().hex)
        calls = [
            pack_apply(APPLY_SHA, every[start : start + WRITES_PER_SCRIPT], (journal, str(n)))
            for n, start in enumerate(range(0, len(every), WRITES_PER_SCRIPT))
        ]
        return Prepared((pack_journal(JOURNAL_SHA, journal, marker, calls), *calls), (), ())

    async def apply_prepared(self, prepared: Prepared) -> float:
        """Apply; returns the longest time one script call held a Redis server, in
        seconds (every other client of that server waited meanwhile)."""
        if self._script is None:
            self._script = self.redis.register_script(APPLY_WRITES_LUA)
        if prepared.packed:
            replies = await self._call_packed(prepared.packed)
            # The first reply of a journal is the journal's own: written or not.
            return max(script_seconds(r) for r in replies[len(replies) > 1 :])
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

    async def _call_packed(self, packed: Sequence[bytes]) -> list[Any]:
        return await call_packed(self.redis, packed)


async def call_packed(redis: AsyncRedis, packed: Sequence[bytes]) -> list[Any]:
    """Send pre-packed EVALSHAs in one round trip and return their replies; load the
    scripts once if the server lacks them and send them all again (each is idempotent: a
    journal is written once, a journal's call applies once)."""
    try:
        return await _send_packed(redis, packed)
    except NoScriptError:
        await redis.script_load(APPLY_WRITES_LUA)
        await redis.script_load(JOURNAL_LUA)
        return await _send_packed(redis, packed)


async def _send_packed(redis: AsyncRedis, packed: Sequence[bytes]) -> list[Any]:
    assert isinstance(redis, aioredis.Redis)
    pool = redis.connection_pool
    connection = await pool.get_connection()
    try:
        await connection.send_packed_command(b"".join(packed))
        replies: list[Any] = []
        failure: ResponseError | None = None
        for _ in packed:
            # Every reply is read, errors too, so the connection stays in step.
            try:
                replies.append(await connection.read_response())
            except ResponseError as error:
                failure = failure or error
        if failure is not None:
            raise failure  # the server answered: the connection is fine
        return replies
    except ResponseError:
        raise
    except BaseException:
        await connection.disconnect()
        raise
    finally:
        await pool.release(connection)


async def complete_journals(redis: AsyncRedis) -> int:
    """Finish every part whose journal a worker wrote but did not see through (it died, or
    lost its connection): its remaining calls, in order. Idempotent, and safe while the
    writer itself is still sending them. Returns the journals completed."""
    if not isinstance(redis, aioredis.Redis):
        return 0  # a Cluster lands its writes per slot, without journals
    completed = 0
    async for key in redis.scan_iter(match=keys.part_journal_pattern(), count=1000):
        entries: dict[bytes, bytes] = await redis.hgetall(key)  # type: ignore[assignment]
        calls = [entries[n] for n in sorted(entries, key=int)]
        if calls:
            await call_packed(redis, calls)
            completed += 1
            log.warning("completed a part left unfinished", extra={"calls": len(calls)})
    return completed


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
