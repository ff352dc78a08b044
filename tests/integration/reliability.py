"""Building blocks of the reliability scenarios: a scripted event log produced once, a
worker process per Redis database, and a digest of everything the engine holds.

Each pass of the same log runs in its own Redis database with its own consumer group,
so a clean pass and a crashed-and-restarted pass can be compared key by key.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from benchmarks.generator import SyntheticShop
from currents import keys
from currents.embedded import die_with_parent
from currents.partitioning import partition_for
from currents.topics import ensure_topics
from schemas.events import partition_key
from schemas.profile import blob_json
from tests.integration.conftest import REPO, TEST_PSEUDONYM_KEY, Servers, settings_from_env

PARTITIONS = 4
# Item and user vectors come from stochastic gradient steps whose order across
# partitions depends on batch boundaries; they are checked for presence, not value.
ORDER_DEPENDENT_SUFFIXES = (":mf",)
# Bookkeeping that legitimately differs between a clean and a crashed pass: worker
# heartbeats, definitions stamped with the time the test stored them, and backfill
# progress (a restarted worker re-evaluates every segment once).
VOLATILE_KEYS = (
    "currents:workers:",
    "currents:progress:",  # named after each pass's own consumer group
    "currents:applied:",  # one marker per part of a batch: random tokens, a TTL of an hour
    "currents:campaigns",
    "currents:campaign:thanks:versions",
    # Slates are derived views, ranked whenever the refresher gets to a shopper (with
    # processing-time stamps and whatever the shared reads held then): not event state.
    "currents:slate:",
    "currents:slates:",
)
VOLATILE_SUFFIXES = (":backfill", ":slate")
# Segment-scoped trending counts an event for the segments its user held when the batch
# began, so batch boundaries move it (docs/reliability.md); every other scope is exact.
BATCH_DEPENDENT_KEYS = ("currents:pop:short:segment:", "currents:pop:long:segment:")
VOLATILE_COUNTERS = {"duplicates", "slates"}
# Blob fields stamped with processing time (not event time): compared without the stamp.
PROMOTION_TIME_FIELDS = {"created_at", "expires_at"}

CAMPAIGN = {
    "name": "Thank-you coupon",
    "trigger": {"type": "event", "event_type": "order_completed"},
    "action": {"message": "Thanks! 5% off your next order", "discount_percent": 5},
    "guardrails": {"holdout": 0.1, "cap_per_user": {"count": 2, "window_hours": 24}},
}
SEGMENT = ("active_viewers", "counts.product_viewed >= 3")


def database_url(url: str, db: int) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


def scripted_events(count: int, users: int, seed: int = 11) -> list[dict[str, Any]]:
    """``count`` shopper events (plus the catalog), event time ending about now."""
    shop = SyntheticShop(users=users, items=400, seed=seed)
    start = int(time.time() * 1000) - count * 20
    events = shop.catalog_events(start - 1000)
    stream = shop.stream(start, session_gap_ms=200)
    while len(events) < count:
        events.append(next(stream))
    return events


def produce(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    """One event per record (as kcat or any per-event producer sends), keyed by user, on
    the partition the API would pick."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
        await producer.start()
        try:
            pending = []
            for event in events:
                key = partition_key(event)
                pending.append(
                    await producer.send(
                        topic,
                        orjson.dumps(event),
                        key=key.encode(),
                        partition=partition_for(key, PARTITIONS),
                    )
                )
            await asyncio.gather(*pending)
        finally:
            await producer.stop()

    asyncio.run(send())


def rewind(bootstrap: str, topic: str, group: str, records: int) -> dict[int, int]:
    """Move the group's committed offsets back by ``records`` in all, spread over the
    partitions (the group must have no live member). Returns the new offset of each
    partition."""

    async def move() -> dict[int, int]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            consumer.assign(partitions)
            committed = {tp: await consumer.committed(tp) or 0 for tp in partitions}
            share = -(-records // PARTITIONS)
            target = {tp: max(0, offset - share) for tp, offset in committed.items()}
            await consumer.commit(dict(target))
            return {tp.partition: offset for tp, offset in target.items()}
        finally:
            await consumer.stop()

    return asyncio.run(move())


@dataclass
class Pass:
    """One worker (restartable) over the shared topic into one Redis database."""

    servers: Servers
    topic: str
    db: int
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    kills: int = 0

    def __post_init__(self) -> None:
        self.redis_url = database_url(self.servers.redis_url, self.db)
        run = uuid.uuid4().hex[:8]
        self.env = {
            **os.environ,
            "CURRENTS_KAFKA_BOOTSTRAP": self.servers.bootstrap,
            "CURRENTS_REDIS_URL": self.redis_url,
            "CURRENTS_EVENTS_TOPIC": self.topic,
            "CURRENTS_EVENTS_PARTITIONS": str(PARTITIONS),
            "CURRENTS_WORKER_GROUP": f"currents-reliability-{run}",
            "CURRENTS_DLQ_TOPIC": f"currents.events.dlq.rel-{run}",
            "CURRENTS_PROMOTIONS_TOPIC": f"currents.promotions.rel-{run}",
            "CURRENTS_SEGMENTS_TOPIC": f"currents.segments.rel-{run}",
            "CURRENTS_PROFILE_CHANGES_TOPIC": f"currents.profile-changes.rel-{run}",
            "CURRENTS_PSEUDONYM_KEY": TEST_PSEUDONYM_KEY,
            "CURRENTS_DATA_DIR": str(self.log_dir / "data"),
            # No top-K cuts: a cut made at a batch boundary drops an item's score so far,
            # so where batches end would decide what survives (docs/reliability.md).
            "CURRENTS_COOCCURRENCE_NEIGHBOURS": "1000",
            "CURRENTS_SESSION_SUCCESSORS": "1000",
            **self.extra_env,
        }
        self.settings = settings_from_env(self.env)
        self.client = redis.Redis.from_url(self.redis_url)

    def prepare(self) -> None:
        """Empty database, topics, one campaign and one segment (as the API stores them)."""
        from serving.campaign_store import CampaignStore
        from serving.segment_store import SegmentStore
        from triggers.campaigns import Campaign

        self.client.flushdb()
        ensure_topics(self.servers.bootstrap, self.settings)

        async def define() -> None:
            async_client = redis.asyncio.Redis.from_url(self.redis_url)
            await CampaignStore(async_client).put("thanks", Campaign.model_validate(CAMPAIGN))
            await SegmentStore(async_client).put(SEGMENT[0], SEGMENT[1], "")
            await async_client.aclose()

        asyncio.run(define())

    def start(self) -> None:
        log = (self.log_dir / f"worker-db{self.db}.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "currents.cli", "worker"],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.kills += 1

    def terminate(self, timeout_s: float = 30) -> float:
        """SIGTERM; the seconds the worker took to exit."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout_s)
        return time.monotonic() - started

    def counter(self, name: str) -> int:
        return int(self.client.hget(keys.counters(), name) or 0)

    def wait_for_applied(
        self, target: int, timeout_s: float, on_progress: Callable[[int], None] | None = None
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while (applied := self.counter("events_processed")) < target:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{applied} of {target} events applied in {timeout_s}s")
            if on_progress is not None:
                on_progress(applied)
            time.sleep(0.1)

    def settle(self, quiet_s: float = 1.5, timeout_s: float = 60) -> None:
        """Wait until the database stops changing (the sweep and late batches are done)."""
        deadline = time.monotonic() + timeout_s
        previous = None
        while time.monotonic() < deadline:
            current = (self.counter("events_processed"), self.counter("duplicates"))
            if current == previous:
                return
            previous = current
            time.sleep(quiet_s)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def snapshot(client: redis.Redis) -> dict[str, Any]:
    """Everything in the database, decoded, minus what legitimately differs per pass."""
    held: dict[str, Any] = {}
    for raw_key in client.scan_iter(count=2000):
        key = raw_key.decode()
        if key.startswith(VOLATILE_KEYS + BATCH_DEPENDENT_KEYS) or key.endswith(VOLATILE_SUFFIXES):
            continue
        kind = client.type(raw_key).decode()
        if key.endswith(ORDER_DEPENDENT_SUFFIXES):
            held[key] = ("present", kind)
        elif kind == "string":
            value = client.get(raw_key)
            held[key] = _blob(value) if key.endswith(":profile") else value
        elif kind == "hash":
            fields = {k.decode(): v for k, v in client.hgetall(raw_key).items()}
            if key == keys.counters():
                fields = {k: v for k, v in fields.items() if k not in VOLATILE_COUNTERS}
            held[key] = fields
        elif kind == "zset":
            held[key] = {m.decode(): s for m, s in client.zrange(raw_key, 0, -1, withscores=True)}
        elif kind == "set":
            held[key] = sorted(client.smembers(raw_key))
        elif kind == "list":
            held[key] = client.lrange(raw_key, 0, -1)
        else:
            held[key] = kind
    return held


def _blob(value: bytes) -> Any:
    blob = orjson.loads(blob_json(value))
    for promotion in blob.get("pr", []):
        for name in PROMOTION_TIME_FIELDS:
            promotion.pop(name, None)
    blob.pop("cs", None)  # send times are processing times; the sends are in "pi"
    blob.pop("aa", None)  # when the newest event was applied: processing time too
    return blob


def differences(clean: dict[str, Any], other: dict[str, Any], limit: int = 10) -> list[str]:
    """Human-readable differences; floats equal within a relative 1e-9 (sums of the same
    terms added in another order)."""
    found: list[str] = []
    for key in sorted(set(clean) | set(other)):
        if key not in other:
            found.append(f"missing {key}")
        elif key not in clean:
            found.append(f"extra {key}")
        elif not _same(clean[key], other[key]):
            found.append(f"{key}: {str(clean[key])[:200]} != {str(other[key])[:200]}")
        if len(found) >= limit:
            break
    return found


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bytes) and isinstance(b, bytes) and a != b:
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
        except ValueError:
            return False
    return bool(a == b)


def promotion_sends(client: redis.Redis) -> int:
    return int(client.hget(keys.campaign_stats("thanks"), "sent") or 0)
