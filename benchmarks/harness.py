"""Engine plumbing shared by the end-to-end benchmarks: generated events, producers for
both record shapes, worker/API subprocesses with fresh topics and groups, counters and a
state hash over Redis. Everything talks to the loopback servers of :func:`bench_servers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import redis as sync_redis
import yaml
from aiokafka import AIOKafkaProducer

from benchmarks.common import BenchServers, client_settings
from benchmarks.generator import SyntheticShop
from currents import keys
from currents.embedded import die_with_parent, free_port
from currents.kafka_security import client_options
from currents.redis_client import create_redis, tls_options
from currents.settings import Settings
from currents.topics import ensure_topics
from profiles.segments import load_segments_file
from schemas.events import partition_key
from serving.campaign_store import CampaignStore
from serving.ingest import plan_records
from serving.security import format_entry
from serving.segment_store import SegmentStore
from triggers.campaigns import Campaign

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
REQUEST_EVENTS = 500  # what one POST /v1/events may carry
START_MS = 1_790_000_000_000


def require_loopback(bootstrap: str | None, redis_url: str) -> None:
    """Load goes only to this machine: refuse servers that are not on loopback."""
    hosts = [h.rsplit(":", 1)[0] for h in (bootstrap or "").split(",") if h.strip()]
    hosts.append(urlsplit(redis_url).hostname or "")
    for host in hosts:
        if host not in {"127.0.0.1", "localhost", "::1", "[::1]"}:
            raise SystemExit(f"benchmarks only load loopback servers; {host!r} is not one")


def generate_events(
    count: int, users: int, items: int, seed: int = 7, start_ms: int = START_MS
) -> list[dict[str, Any]]:
    """The catalog, then identified shoppers' sessions: ``count`` events in all."""
    shop = SyntheticShop(users=users, items=items, seed=seed)
    events = shop.catalog_events(start_ms)[:count]
    stream = shop.stream(start_ms + 1000, session_gap_ms=200)
    while len(events) < count:
        events.append(next(stream))
    return events


# --- producing ------------------------------------------------------------------------------
def single_records(events: list[dict[str, Any]]) -> list[tuple[bytes, bytes, int | None]]:
    """One event per record, keyed by user: what kcat or any per-event producer sends."""
    return [(partition_key(e).encode(), orjson.dumps(e), None) for e in events]


def batched_records(
    events: list[dict[str, Any]], partitions: int
) -> list[tuple[bytes, bytes, int | None]]:
    """What POST /v1/events sends: each request's events packed per partition."""
    records: list[tuple[bytes, bytes, int | None]] = []
    for begin in range(0, len(events), REQUEST_EVENTS):
        plan = plan_records(events[begin : begin + REQUEST_EVENTS], partitions)
        records += [(r.key, r.value, r.partition) for r in plan.records]
    return records


async def produce(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes, int | None]], desc: str = ""
) -> float:
    """Produce every record (acks=all); returns records per second."""
    from tqdm import tqdm

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=20,
        max_batch_size=512 * 1024,
        **client_options(client_settings(bootstrap=bootstrap)),
    )
    await producer.start()
    started = time.perf_counter()
    try:
        with tqdm(total=len(records), desc=desc or f"produce {topic}", unit="rec") as bar:
            window: list[asyncio.Future[Any]] = []
            for key, value, partition in records:
                window.append(await producer.send(topic, value, key=key, partition=partition))
                if len(window) >= 5000:
                    await asyncio.gather(*window)
                    bar.update(len(window))
                    window = []
            await asyncio.gather(*window)
            bar.update(len(window))
    finally:
        await producer.stop()
    return len(records) / (time.perf_counter() - started)


# --- the engine as subprocesses --------------------------------------------------------------
@dataclass
class Run:
    """One engine configuration: its own topics, group, API key and settings."""

    servers: BenchServers
    env: dict[str, str]
    settings: Settings
    api_url: str
    api_key: str
    log_dir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, command: str, name: str, **extra_env: str) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "currents.cli", command],
                env={**self.env, **extra_env},
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        self.processes.append(process)
        return process

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def check_alive(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise SystemExit(
                    f"{process.args!r} exited with {process.returncode}; logs in {self.log_dir}"
                )

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.processes.clear()

    def wait_api(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        reason = "no answer"
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(httpx.HTTPError):
                response = httpx.get(f"{self.api_url}/readyz", timeout=2)
                if response.status_code == 200:
                    return
                reason = response.text
            time.sleep(0.2)
        raise SystemExit(f"the engine was not ready in {timeout_s:.0f}s: {reason}")


def new_run(servers: BenchServers, log_root: Path, partitions: int = 4, **overrides: str) -> Run:
    """Fresh topic names and consumer group, so runs never see each other's records."""
    assert servers.bootstrap is not None
    run_id = uuid.uuid4().hex[:8]
    secret = f"bench-{uuid.uuid4().hex}"
    port = free_port()
    log_dir = log_root / run_id
    log_dir.mkdir(parents=True)
    env = {
        **os.environ,
        "CURRENTS_KAFKA_BOOTSTRAP": servers.bootstrap,
        "CURRENTS_REDIS_URL": servers.redis_url,
        "CURRENTS_EVENTS_TOPIC": f"bench.events.{run_id}",
        "CURRENTS_DLQ_TOPIC": f"bench.dlq.{run_id}",
        "CURRENTS_SEGMENTS_TOPIC": f"bench.segments.{run_id}",
        "CURRENTS_PROFILE_CHANGES_TOPIC": f"bench.profile-changes.{run_id}",
        "CURRENTS_PROMOTIONS_TOPIC": f"bench.promotions.{run_id}",
        "CURRENTS_EVENTS_PARTITIONS": str(partitions),
        "CURRENTS_WORKER_GROUP": f"bench-{run_id}",
        "CURRENTS_API_KEYS": format_entry("bench", secret, {"admin", "read", "ingest"}),
        "CURRENTS_API_PORT": str(port),
        "CURRENTS_LOG_LEVEL": "WARNING",
        "CURRENTS_DATA_DIR": str(log_dir / "data"),
        # One bench key sends all the load: the per-key limit would measure itself.
        "CURRENTS_RATE_LIMIT_PER_S": "0",
        **overrides,
    }
    prefix = "CURRENTS_"
    settings = Settings.model_validate(
        {
            k[len(prefix) :].lower(): v
            for k, v in env.items()
            if k.startswith(prefix) and k[len(prefix) :].lower() in Settings.model_fields
        }
    )
    ensure_topics(servers.bootstrap, settings)
    return Run(servers, env, settings, f"http://127.0.0.1:{port}", secret, log_dir)


@contextlib.contextmanager
def log_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="currents-bench-logs-") as path:
        yield Path(path)


# --- Redis ------------------------------------------------------------------------------------
def redis_client(url: str) -> Any:
    """A synchronous client for counters and hashes (a cluster client for ``?cluster=1``)."""
    from currents.redis_client import _strip_cluster_flag, is_cluster_url

    tls = tls_options(url, client_settings(redis_url=url))
    if is_cluster_url(url):
        return sync_redis.RedisCluster.from_url(_strip_cluster_flag(url), **tls)
    return sync_redis.Redis.from_url(url, **tls)


def require_empty(url: str) -> None:
    client = redis_client(url)
    try:
        if client.dbsize():
            raise SystemExit(
                "this benchmark needs an empty Redis database; point CURRENTS_REDIS_URL at "
                "one (e.g. redis://127.0.0.1:6379/14) or leave it unset to use an embedded one"
            )
    finally:
        client.close()


def flush(url: str) -> None:
    """Empty the database (only ever one this benchmark checked was empty at the start)."""
    client = redis_client(url)
    try:
        client.flushall() if hasattr(client, "get_nodes") else client.flushdb()
    finally:
        client.close()


def counter(client: Any, name: str = "events_processed") -> int:
    return int(client.hget(keys.counters(), name) or 0)


def handled(client: Any) -> int:
    """Events the worker has finished with: applied or recognised as duplicates."""
    values = client.hmget(keys.counters(), ["events_processed", "duplicates"])
    return sum(int(v or 0) for v in values)


async def load_definitions(redis_url: str) -> tuple[int, int]:
    """The example segments and campaigns, so segment and trigger evaluation run."""
    redis = create_redis(
        redis_url, timeout_s=10, **tls_options(redis_url, client_settings(redis_url=redis_url))
    )
    try:
        segments = load_segments_file(EXAMPLES / "segments.yaml")
        store = SegmentStore(redis)
        for definition in segments:
            await store.put(definition.name, definition.condition, definition.description)
        campaigns = yaml.safe_load((EXAMPLES / "campaigns.yaml").read_text()) or {}
        campaign_store = CampaignStore(redis)
        for campaign_id, body in campaigns.items():
            await campaign_store.put(campaign_id, Campaign.model_validate(body))
    finally:
        await redis.aclose()
    return len(segments), len(campaigns)


# Keys whose content depends on wall-clock time or on run names, not on the events:
# heartbeats, served-list records, segment backfill progress, consumer progress (named
# by group and topic), campaign definitions (stamped with their load time), and the
# privacy keys (the subjects' random key, the legacy-marker flag).
VOLATILE_PATTERNS = (
    ":privacy:",
    ":workers:",
    ":rec:",
    "backfill",
    ":progress:",
    "currents:campaigns",
    ":versions",
)


def key_family(name: str) -> str:
    """A key with its ids and generations starred, to summarise differences.

    >>> key_family("{i:sku-00001}:co:viewed:g12"), key_family("{u:user-7}:profile")
    ('{i:*}:co:viewed:g*', '{u:*}:profile')
    """
    name = re.sub(r"\{([ui]):[^}]*\}", r"{\1:*}", name)
    return re.sub(r":g\d+", ":g*", name)


def key_digests(url: str) -> dict[str, str]:
    """Key -> digest of its canonical value, for every non-volatile key (floats rounded
    to 6 significant digits, since addition order differs between runs)."""
    client = redis_client(url)
    try:
        digests = {}
        for raw in client.scan_iter(count=1000):
            name = raw.decode()
            if any(p in name for p in VOLATILE_PATTERNS) or name == keys.counters():
                continue
            digests[name] = hashlib.sha256(_canonical(client, name)).hexdigest()[:16]
        return digests
    finally:
        client.close()


def state_digest(url: str) -> tuple[str, int]:
    """One digest over :func:`key_digests`; returns (hex digest, keys compared)."""
    digests = key_digests(url)
    whole = hashlib.sha256()
    for name in sorted(digests):
        whole.update(f"{name}\0{digests[name]}\n".encode())
    return whole.hexdigest(), len(digests)


def _round(value: bytes) -> bytes:
    try:
        return f"{float(value):.6g}".encode()
    except ValueError:
        return value


def _canonical(client: Any, name: str) -> bytes:
    kind = client.type(name)
    kind = kind.decode() if isinstance(kind, bytes) else kind
    if kind == "string":
        return bytes(client.get(name) or b"")
    if kind == "hash":
        return orjson.dumps(
            sorted((k.decode(), _round(v).decode()) for k, v in client.hgetall(name).items())
        )
    if kind == "zset":
        members = client.zrange(name, 0, -1, withscores=True)
        return orjson.dumps(sorted((m.decode(), f"{s:.6g}") for m, s in members))
    if kind == "set":
        return orjson.dumps(sorted(m.decode() for m in client.smembers(name)))
    if kind == "list":
        return orjson.dumps([m.decode() for m in client.lrange(name, 0, -1)])
    return kind.encode()
