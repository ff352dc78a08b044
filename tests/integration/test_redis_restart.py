"""Redis is killed under load and comes back from its AOF: the API answers fast (503 or
non-personalized) while it is gone, the worker and the API recover without restarting,
and every event posted before, during and after the outage is applied exactly once."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from currents.embedded import start_redis
from tests.integration.conftest import Engine, Servers, poll, start_engine, stop_engine
from tests.integration.test_pipeline import interaction, profile_counts

USERS = 20
OUTAGE_S = 4.0


class Load(threading.Thread):
    """Posts one product view per user per round until stopped; counts what was accepted."""

    def __init__(self, engine: Engine, prefix: str) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.prefix = prefix
        self.accepted: Counter[str] = Counter()
        self.stop_event = threading.Event()
        self.rejected = 0

    def run(self) -> None:
        with self.engine.client("ingest") as client:
            round_ = 0
            while not self.stop_event.is_set():
                users = [f"{self.prefix}-{n}" for n in range(USERS)]
                batch = [interaction("product_viewed", u, f"p{round_ % 7}") for u in users]
                response = client.post("/v1/events", json=batch)
                if response.status_code == 202 and not response.json()["rejected"]:
                    self.accepted.update(users)
                else:
                    self.rejected += 1
                round_ += 1
                time.sleep(0.05)


def test_redis_killed_under_load_recovers_with_nothing_lost(
    servers: Servers, tmp_path: Path, unique: str
) -> None:
    redis_server = start_redis(tmp_path / "own-redis")
    (tmp_path / "engine").mkdir()
    port = redis_server.port
    engine = start_engine(
        Servers(servers.bootstrap, redis_server.address, servers.external), tmp_path / "engine"
    )
    pids = {name: p.pid for name, p in engine.processes.items()}
    load = Load(engine, f"r-{unique}")
    try:
        load.start()
        time.sleep(2)
        redis_server.process.send_signal(signal.SIGKILL)
        redis_server.process.wait(5)
        outage_started = time.monotonic()
        answers: list[tuple[int, float, bool | None]] = []
        with engine.client("read") as client:
            while time.monotonic() - outage_started < OUTAGE_S:
                asked = time.monotonic()
                try:
                    response = client.get(f"/v1/users/r-{unique}-0/recommendations", timeout=5)
                    body: dict[str, Any] = response.json()
                    answers.append(
                        (response.status_code, time.monotonic() - asked, body.get("personalized"))
                    )
                except httpx.TimeoutException:
                    answers.append((0, time.monotonic() - asked, None))
                time.sleep(0.2)
        assert answers, "no request made during the outage"
        assert all(status in {200, 503} for status, _, _ in answers), answers
        assert max(seconds for _, seconds, _ in answers) < 3, answers  # never a hang
        assert all(p is False for status, _, p in answers if status == 200), answers

        restarted = start_redis(tmp_path / "own-redis", port=port)
        recovered_at = time.monotonic()
        poll(
            lambda: engine_ready(engine),
            timeout_s=30,
            what=f"the API to be ready again\n{engine.log_tail('api')}",
        )
        time.sleep(2)
        load.stop_event.set()
        load.join(10)
        expected = dict(load.accepted)
        poll(
            lambda: (
                all(
                    profile_counts(engine, user).get("product_viewed") == count
                    for user, count in expected.items()
                )
                or None
            ),
            timeout_s=60,
            what=f"every accepted event applied\n{engine.log_tail('worker')}",
        )
        recovery_s = time.monotonic() - recovered_at
        assert {name: p.pid for name, p in engine.processes.items()} == pids
        assert all(p.poll() is None for p in engine.processes.values())
        print(
            f"\nredis restart: {sum(expected.values())} events accepted, outage "
            f"{OUTAGE_S}s, answers during outage {Counter(s for s, _, _ in answers)}, "
            f"caught up {recovery_s:.1f}s after Redis returned"
        )
        restarted.stop()
    finally:
        load.stop_event.set()
        stop_engine(engine)
        redis_server.stop()


def engine_ready(engine: Engine) -> bool | None:
    try:
        return httpx.get(f"{engine.api_url}/readyz", timeout=2).status_code == 200 or None
    except httpx.HTTPError:
        return None


pytestmark = pytest.mark.timeout(300)
