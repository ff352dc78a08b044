"""The worker never stalls on heavy real traffic (grocery backfill).

Heavy baskets (benchmarks/heavy_baskets.py: 1-80 lines, weekly regulars, histories of
hundreds of lines, a 20,000-item catalog) are sent through ``POST /v1/events`` in
500-event requests as fast as the API accepts them, to a real worker on the real broker
and Redis. The applied-events counter must rise in every 5 s window until it reaches the
total. `pytest --long` sends 100,000 orders.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from benchmarks.heavy_baskets import heavy_basket_events
from currents import keys
from tests.integration.conftest import Servers, start_engine, stop_engine

REQUEST_EVENTS = 500
WINDOW_S = 5.0


def send_all(api_url: str, key: str, events: list[dict[str, Any]], errors: list[str]) -> None:
    with httpx.Client(base_url=api_url, headers={"X-API-Key": key}, timeout=30) as client:
        for begin in range(0, len(events), REQUEST_EVENTS):
            body = orjson.dumps(events[begin : begin + REQUEST_EVENTS])
            while True:
                response = client.post(
                    "/v1/events", content=body, headers={"Content-Type": "application/json"}
                )
                if response.status_code != 503:  # back-pressure: send it again
                    break
                time.sleep(0.2)
            if response.status_code != 202 or response.json()["rejected"]:
                errors.append(f"{response.status_code}: {response.text[:300]}")
                return


@pytest.mark.timeout(3600)
def test_heavy_baskets_as_fast_as_accepted_never_stall_the_worker(
    servers: Servers, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    long = request.config.getoption("--long")
    orders = 100_000 if long else 8_000
    customers = 30_000 if long else 4_000
    events = heavy_basket_events(orders, customers, 20_000, end_ms=int(time.time() * 1000))
    lines = sum(len(e["properties"].get("products", ())) for e in events)
    # A topic of its own: the session's engine (another consumer group on the same Redis)
    # would apply these events too and count them in the same counters.
    topic = f"currents.events.liveness-{uuid.uuid4().hex[:8]}"
    engine = start_engine(servers, tmp_path, CURRENTS_EVENTS_TOPIC=topic)
    redis = engine.redis()
    # The session's Redis already counts the events of the tests that ran before this one.
    baseline = int(redis.hget(keys.counters(), "events_processed") or 0)
    errors: list[str] = []
    sender = threading.Thread(
        target=send_all, args=(engine.api_url, engine.keys["ingest"], events, errors)
    )
    started = time.monotonic()
    rises: list[int] = []
    try:
        sender.start()
        before = 0
        applied = 0
        while applied < len(events):
            time.sleep(WINDOW_S)
            applied = int(redis.hget(keys.counters(), "events_processed") or 0) - baseline
            assert not errors, errors
            assert applied > before, (
                f"the worker applied nothing for {WINDOW_S}s at {applied} of {len(events)} "
                f"events\nworker:\n{engine.log_tail('worker')}"
            )
            rises.append(applied - before)
            before = applied
        seconds = time.monotonic() - started
        sender.join(60)
        assert not errors, errors
        log = (tmp_path / "worker.log").read_text(errors="replace")
        # Compute that stays off the loop keeps timers and sockets honest.
        for sign in ("is overlapping", "redis unavailable", "event loop blocked", "Timeout"):
            assert sign not in log, [line for line in log.splitlines() if sign in line][:5]
    finally:
        stop_engine(engine)
    assert applied == len(events)
    print(
        f"\nliveness: {orders} orders ({lines} lines, {len(events)} events) applied in "
        f"{seconds:.1f}s: {orders / seconds:.0f} orders/s; smallest 5 s rise {min(rises)}"
    )
