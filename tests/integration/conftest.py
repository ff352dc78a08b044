"""Real servers for integration tests, started once per test session.

The broker and Redis are the external ones named by ``CURRENTS_KAFKA_BOOTSTRAP`` /
``CURRENTS_REDIS_URL``, or embedded ones (Tansu, redis-server) started here. The worker
and the API run as real subprocesses (`currents worker`, `currents api`) with a fresh
consumer group. When anything cannot start, the fixture fails loudly with the reason.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from currents.embedded import (
    ServerProcess,
    die_with_parent,
    free_port,
    start_broker,
    start_redis,
)
from currents.errors import CurrentsError
from currents.redis_client import tls_options
from currents.settings import Settings
from currents.topics import ensure_topics
from serving.security import format_entry

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
TEST_PSEUDONYM_KEY = "test-pseudonym-key"


@dataclass
class Servers:
    bootstrap: str
    redis_url: str
    external: bool


@dataclass
class Engine:
    servers: Servers
    settings: Settings
    api_url: str
    keys: dict[str, str]
    env: dict[str, str]
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def client(self, scope: str = "admin") -> httpx.Client:
        headers = {"X-API-Key": self.keys[scope]} if scope else {}
        return httpx.Client(base_url=self.api_url, headers=headers, timeout=10)

    def redis(self) -> redis.Redis:
        url = self.servers.redis_url
        return redis.Redis.from_url(url, **tls_options(url, self.settings))

    def post_events(self, events: list[dict[str, Any]] | dict[str, Any]) -> httpx.Response:
        with self.client("ingest") as client:
            return client.post(
                "/v1/events",
                content=orjson.dumps(events),
                headers={"Content-Type": "application/json"},
            )

    def produce(self, values: list[tuple[bytes | None, bytes]], topic: str | None = None) -> None:
        async def send() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=self.servers.bootstrap, acks="all")
            await producer.start()
            try:
                for key, value in values:
                    await producer.send_and_wait(
                        topic or self.settings.events_topic, value, key=key
                    )
            finally:
                await producer.stop()

        asyncio.run(send())

    def consume_all(self, topic: str, timeout_s: float = 5.0) -> list[bytes]:
        async def read() -> list[bytes]:
            consumer = AIOKafkaConsumer(
                topic,
                bootstrap_servers=self.servers.bootstrap,
                group_id=f"reader-{uuid.uuid4().hex[:8]}",
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )
            await consumer.start()
            values: list[bytes] = []
            try:
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline:
                    batch = await consumer.getmany(timeout_ms=300)
                    for records in batch.values():
                        values.extend(r.value for r in records if r.value is not None)
            finally:
                await consumer.stop()
            return values

        return asyncio.run(read())

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )


def poll(
    check: Callable[[], T | None],
    *,
    timeout_s: float = 20.0,
    what: str | Callable[[], str] = "condition",
) -> T:
    """Call ``check`` until it returns something truthy, or fail after ``timeout_s``
    (``what`` may be a function, to describe the last state in the failure)."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    description = what() if callable(what) else what
    pytest.fail(f"timed out after {timeout_s}s waiting for {description}; last value: {last!r}")


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    bootstrap = os.environ.get("CURRENTS_KAFKA_BOOTSTRAP")
    redis_url = os.environ.get("CURRENTS_REDIS_URL")
    external = bool(bootstrap)
    started: list[ServerProcess] = []
    data_dir = tmp_path_factory.mktemp("servers")
    try:
        if not bootstrap:
            broker = start_broker(data_dir)
            started.append(broker)
            bootstrap = broker.address
        if not redis_url:
            server = start_redis(data_dir)
            started.append(server)
            redis_url = server.address
        redis.Redis.from_url(redis_url, socket_timeout=3).ping()
    except (CurrentsError, redis.RedisError, OSError) as error:
        for server in started:
            server.stop()
        pytest.fail(f"cannot start or reach the test servers: {error}", pytrace=False)
    yield Servers(bootstrap, redis_url, external)
    for server in reversed(started):
        server.stop()


def _wait_ready(engine: Engine, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    reason = "no answer"
    while time.monotonic() < deadline:
        for name, process in engine.processes.items():
            if process.poll() is not None:
                pytest.fail(
                    f"{name} exited with {process.returncode}:\n{engine.log_tail(name)}",
                    pytrace=False,
                )
        try:
            response = httpx.get(f"{engine.api_url}/readyz", timeout=2)
            if response.status_code == 200:
                return
            reason = response.text
        except httpx.HTTPError as error:
            reason = str(error)
        time.sleep(0.2)
    pytest.fail(
        f"engine not ready in {timeout_s}s: {reason}\nworker:\n{engine.log_tail('worker')}\n"
        f"api:\n{engine.log_tail('api')}",
        pytrace=False,
    )


def settings_from_env(env: dict[str, str]) -> Settings:
    """The settings the engine's processes will read from ``env`` (JSON values decoded,
    as pydantic-settings does for complex fields)."""
    values: dict[str, Any] = {}
    for name, value in env.items():
        field_name = name[len("CURRENTS_") :].lower()
        if name.startswith("CURRENTS_") and field_name in Settings.model_fields:
            values[field_name] = orjson.loads(value) if value.startswith(("[", "{")) else value
    return Settings(**values)


CLI = (sys.executable, "-m", "currents.cli")


def start_engine(
    servers: Servers,
    log_dir: Path,
    port: int | None = None,
    *,
    cli: Sequence[str] = CLI,
    cwd: Path = REPO,
    base_env: Mapping[str, str] | None = None,
    **overrides: str,
) -> Engine:
    """`<cli> worker` and `<cli> api` on ``servers``, ready (``/readyz`` 200). ``cli``,
    ``cwd`` and ``base_env`` (default: this process's environment) let a test run the
    engine as something else installed it, e.g. the image's venv (test_image.py)."""
    run_id = uuid.uuid4().hex[:8]
    keys = {scope: f"test-{scope}-{run_id}" for scope in ("admin", "read", "ingest")}
    entries = [
        format_entry("admin", keys["admin"], {"admin", "read", "ingest"}),
        format_entry("reader", keys["read"], {"read"}),
        format_entry("ingester", keys["ingest"], {"ingest"}),
    ]
    port = port or free_port()
    env = {
        **(os.environ if base_env is None else base_env),
        "CURRENTS_KAFKA_BOOTSTRAP": servers.bootstrap,
        "CURRENTS_REDIS_URL": servers.redis_url,
        "CURRENTS_WORKER_GROUP": f"currents-test-{run_id}",
        "CURRENTS_API_KEYS": ";".join(entries),
        "CURRENTS_API_PORT": str(port),
        "CURRENTS_WORKER_BATCH_WITHIN_S": "0.02",
        "CURRENTS_LOG_LEVEL": "INFO",
        "CURRENTS_DATA_DIR": str(log_dir / "data"),
        "CURRENTS_PSEUDONYM_KEY": TEST_PSEUDONYM_KEY,
        **overrides,
    }
    if servers.external:  # keep runs apart on a shared broker
        env.setdefault("CURRENTS_EVENTS_TOPIC", f"currents.events.test-{run_id}")
        env.setdefault("CURRENTS_DLQ_TOPIC", f"currents.events.dlq.test-{run_id}")
    settings = settings_from_env(env)
    ensure_topics(servers.bootstrap, settings)
    engine = Engine(servers, settings, f"http://127.0.0.1:{port}", keys, env, log_dir)
    for name in ("worker", "api"):
        log = (log_dir / f"{name}.log").open("ab")
        engine.processes[name] = subprocess.Popen(
            [*cli, name],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
    try:
        _wait_ready(engine)
    except BaseException:
        stop_engine(engine)  # never leave a half-started engine behind
        raise
    return engine


def stop_engine(engine: Engine) -> None:
    for process in engine.processes.values():
        process.terminate()
    for process in engine.processes.values():
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def engine(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    started = start_engine(servers, tmp_path_factory.mktemp("engine"))
    yield started
    stop_engine(started)


@pytest.fixture
def unique() -> str:
    """A fresh id fragment so tests never see each other's users and items."""
    return uuid.uuid4().hex[:10]
