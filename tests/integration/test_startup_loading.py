"""Start-up on a Redis that is still loading a large append-only file.

A generated AOF of profile-sized values (about 34 MB, as a new user's second `currents up`
had) is loaded by a real redis-server. ``key-load-delay`` (a Redis setting made for
exactly this) stretches the load to several seconds, as a shop's multi-GB file would.
The worker and the API start meanwhile: the API answers ``/readyz`` 503 naming the load,
nothing exits, and both are ready once the load ends, with no restart by hand. `currents
up` on a data dir holding such a file waits with progress and comes up too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import redis
from redis.exceptions import BusyLoadingError

from currents.embedded import die_with_parent, free_port, start_redis
from tests.integration.conftest import REPO, Servers, poll, start_engine, stop_engine

VALUE = b"x" * 120


def write_aof(path: Path, keys: int) -> int:
    """An AOF of ``keys`` SETs; returns its size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        chunk = []
        for index in range(keys):
            key = b"{u:loaded-%d}:profile" % index
            chunk.append(
                b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                % (len(key), key, len(VALUE), VALUE)
            )
            if len(chunk) >= 10_000:
                out.write(b"".join(chunk))
                chunk = []
        out.write(b"".join(chunk))
    return path.stat().st_size


def test_api_and_worker_wait_for_a_loading_redis_and_come_up(
    servers: Servers, tmp_path: Path
) -> None:
    data = tmp_path / "redis-data"
    size = write_aof(data / "redis" / "appendonly.aof", 200_000)
    assert size > 30_000_000
    # 4 us a key asked (the server sleeps longer): about 10 s of loading here.
    server = start_redis(data, extra_args=("--key-load-delay", "4"))
    try:
        client = redis.Redis.from_url(server.address)
        try:
            client.ping()
            raise AssertionError("redis had already loaded: the test proves nothing")
        except BusyLoadingError:
            pass
        port = free_port()
        reasons: list[str] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                try:
                    response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                    if response.status_code == 503:
                        reasons.extend(response.json()["reasons"])
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        loading = Servers(servers.bootstrap, server.address, external=False)
        (tmp_path / "engine").mkdir()
        started = time.monotonic()
        engine = start_engine(loading, tmp_path / "engine", port=port)
        stop.set()
        try:
            took = time.monotonic() - started
            assert client.exists("{u:loaded-0}:profile", "{u:loaded-199999}:profile") == 2
            assert any(r.startswith("redis is loading its dataset (") for r in reasons), reasons
            worker_log = (tmp_path / "engine" / "worker.log").read_text()
            assert "waiting for redis to load its dataset" in worker_log
            # The engine works on the loaded data.
            response = engine.post_events(
                {
                    "event_id": "after-load-1",
                    "type": "product_viewed",
                    "user_id": "after-load",
                    "timestamp": int(time.time() * 1000),
                    "properties": {"product_id": "p-1"},
                }
            )
            assert response.status_code == 202, response.text
            poll(lambda: client.exists("{u:after-load}:profile"), what="the event applied")
            print(f"\nloading: {size / 1e6:.0f} MB AOF, engine ready {took:.1f}s after start")
        finally:
            stop_engine(engine)
    finally:
        server.stop()


def test_up_waits_for_its_redis_to_load_a_large_aof(tmp_path: Path) -> None:
    write_aof(tmp_path / "redis" / "appendonly.aof", 1_000_000)  # ~2 s to load
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURRENTS_")}
    env |= {"CURRENTS_DATA_DIR": str(tmp_path), "CURRENTS_API_PORT": "0"}
    output = tmp_path / "up.out"
    with output.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "currents.cli", "up"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
    try:
        up_file = tmp_path / "up.json"
        poll(
            lambda: up_file.exists() or process.poll() is not None,
            timeout_s=120,
            what="currents up to be ready",
        )
        text = output.read_text()
        assert process.poll() is None, text
        assert "redis: waiting, redis is loading its dataset" in text, text
        info = json.loads(up_file.read_text())
        assert httpx.get(f"{info['api_url']}/readyz").status_code == 200
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
