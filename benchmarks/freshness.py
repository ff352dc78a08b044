"""`currents bench freshness`: how long after its produce an event shows through the API.

A worker and the API run as subprocesses (fresh topic and group, the example segments and
campaigns loaded). After the catalog, synthetic shoppers' events are produced at a
constant rate (default 2,000 events/s) for a fixed time, as the API would send them
(packed per partition, one request's worth every 50 ms). Five times a second a *probe*
``product_viewed`` for one of a few dedicated users goes out as its own record; from just
before its produce, the user's recommendations and profile are polled every 20 ms until
the served list reflects it (``as_of.event`` is the probe's fingerprint: the slate was
ranked after the event) and the profile's view count includes it (the polling itself
loads the API, so it is kept sparse). The lag percentiles through recommendations (the
target) and through the profile come from those probes; ``max_lag`` is the largest
consumer lag (events produced but not yet handled) sampled meanwhile.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from tqdm import tqdm

from benchmarks.common import (
    bench_servers,
    latency_summary,
    line_plot,
    print_table,
    write_results,
)
from benchmarks.generator import SyntheticShop
from benchmarks.harness import (
    Run,
    batched_records,
    flush,
    handled,
    load_definitions,
    log_root,
    new_run,
    redis_client,
    require_empty,
    require_loopback,
)
from benchmarks.heavy_baskets import HeavyBasketShop
from currents.kafka_security import client_options
from schemas.profile import event_fingerprint

TICK_S = 0.05
PROBE_EVERY_S = 0.2
PROBE_USERS = 20
POLL_S = 0.02
SETTLE_S = 10.0


class Probes:
    def __init__(self, run: Run, item: str) -> None:
        self.item = item
        self.prefix = f"probe-{uuid.uuid4().hex[:6]}"
        self.expected: dict[str, int] = {}
        self.lags_ms: list[float] = []  # through recommendations
        self.profile_lags_ms: list[float] = []
        self.sources: Counter[str] = Counter()
        self.sent = 0
        self.timeouts = 0
        self.client = httpx.AsyncClient(
            base_url=run.api_url, headers={"X-API-Key": run.api_key}, timeout=5
        )
        self.tasks: set[asyncio.Task[None]] = set()

    def event(self, user: str) -> dict[str, Any]:
        return {
            "event_id": uuid.uuid4().hex,
            "type": "product_viewed",
            "user_id": user,
            "timestamp": int(time.time() * 1000),
            "properties": {"product_id": self.item},
        }

    async def fire(self, producer: AIOKafkaProducer, topic: str) -> None:
        user = f"{self.prefix}-{self.sent % PROBE_USERS:02d}"
        self.sent += 1
        self.expected[user] = wanted = self.expected.get(user, 0) + 1
        event = self.event(user)
        started = time.perf_counter()
        await producer.send(topic, orjson.dumps(event), key=user.encode())
        task = asyncio.create_task(
            self._watch(user, wanted, event_fingerprint(event["event_id"]), started)
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _watch(self, user: str, wanted: int, fingerprint: str, started: float) -> None:
        deadline = started + SETTLE_S
        served = profiled = False
        while time.perf_counter() < deadline and not (served and profiled):
            if not served:
                response = await self.client.get(f"/v1/users/{user}/recommendations")
                body = response.json() if response.status_code == 200 else {}
                if (body.get("as_of") or {}).get("event") == fingerprint:
                    served = True
                    self.sources[body.get("source", "?")] += 1
                    self.lags_ms.append((time.perf_counter() - started) * 1000)
            if not profiled:
                response = await self.client.get(f"/v1/users/{user}/profile")
                if response.status_code == 200:
                    views = response.json().get("counts", {}).get("product_viewed", 0)
                    if views >= wanted:
                        profiled = True
                        self.profile_lags_ms.append((time.perf_counter() - started) * 1000)
            if not (served and profiled):
                await asyncio.sleep(POLL_S)
        if not served:
            self.timeouts += 1
            self.lags_ms.append(SETTLE_S * 1000)
        if not profiled:
            self.profile_lags_ms.append(SETTLE_S * 1000)


def traffic(shape: str, users: int, items: int) -> SyntheticShop | HeavyBasketShop:
    """The events a shape sends: ``catalog_events``, an endless ``stream`` and a
    ``probe_item`` (``heavy-baskets``: ``users`` customers buying grocery baskets)."""
    if shape == "heavy-baskets":
        return HeavyBasketShop(customers=users, items=items, seed=11)
    return SyntheticShop(users=users, items=items, seed=11)


async def _drive(
    run: Run, rate: float, duration_s: float, shop: SyntheticShop | HeavyBasketShop
) -> dict[str, Any]:
    assert run.servers.bootstrap is not None
    topic = run.settings.events_topic
    partitions = run.settings.events_partitions
    producer = AIOKafkaProducer(
        bootstrap_servers=run.servers.bootstrap,
        acks="all",
        linger_ms=2,
        **client_options(run.settings),
    )
    await producer.start()
    counters = redis_client(run.servers.redis_url)
    try:
        now_ms = int(time.time() * 1000)
        catalog = shop.catalog_events(now_ms)
        for key, value, partition in batched_records(catalog, partitions):
            await producer.send(topic, value, key=key, partition=partition)
        await producer.flush()
        while handled(counters) < len(catalog):  # the catalog first, untimed
            run.check_alive()
            await asyncio.sleep(0.1)
        probes = Probes(run, shop.probe_item)
        produced = len(catalog)
        sessions = shop.stream(now_ms)
        lag_samples: list[tuple[float, int]] = []
        started = time.monotonic()
        budget = 0.0
        next_probe = started
        with tqdm(total=int(rate * duration_s), desc=f"{rate:,.0f} ev/s", unit="ev") as bar:
            while (elapsed := time.monotonic() - started) < duration_s:
                tick = time.monotonic()
                budget += rate * TICK_S
                count = int(budget)
                budget -= count
                stamp = int(time.time() * 1000)
                events = [dict(e, timestamp=stamp) for e in islice(sessions, count)]
                for key, value, partition in batched_records(events, partitions):
                    await producer.send(topic, value, key=key, partition=partition)
                produced += len(events)
                bar.update(len(events))
                while time.monotonic() >= next_probe:
                    await probes.fire(producer, topic)
                    produced += 1
                    next_probe += PROBE_EVERY_S
                lag_samples.append((elapsed, produced - handled(counters)))
                await asyncio.sleep(max(0.0, TICK_S - (time.monotonic() - tick)))
        await producer.flush()
        await asyncio.gather(*probes.tasks)
        await probes.client.aclose()
        return {
            "lags_ms": probes.lags_ms,
            "profile_lags_ms": probes.profile_lags_ms,
            "sources": dict(probes.sources),
            "timeouts": probes.timeouts,
            "produced": produced,
            "lag_samples": lag_samples,
        }
    finally:
        counters.close()
        await producer.stop()


def run(
    rate: float,
    duration_s: float,
    users: int,
    items: int,
    partitions: int,
    out: Path | None,
    shape: str = "shoppers",
) -> dict[str, Any]:
    """Probe freshness under ``rate`` events/s of ``shape`` traffic (for heavy-baskets
    every event is an order, so the rate is orders/s). The target: p99 <= 500 ms for
    shoppers, <= 1 s for heavy baskets at half the worker's maximum orders/s."""
    target_ms = 1000 if shape == "heavy-baskets" else 500
    with bench_servers() as servers, log_root() as logs:
        require_loopback(servers.bootstrap, servers.redis_url)
        require_empty(servers.redis_url)
        asyncio.run(load_definitions(servers.redis_url))
        engine = new_run(servers, logs, partitions=partitions)
        try:
            engine.spawn("worker", "worker")
            engine.spawn("api", "api")
            engine.wait_api()
            shop = traffic(shape, users, items)
            measured = asyncio.run(_drive(engine, rate, duration_s, shop))
        finally:
            engine.stop()
            flush(servers.redis_url)
    lags = measured["lags_ms"]
    summary = latency_summary(lags)
    profile = latency_summary(measured["profile_lags_ms"])
    result = {
        "shape": shape,
        "rate": rate,
        "duration_s": duration_s,
        "probes": len(lags),
        "timeouts": measured["timeouts"],
        **{k: v for k, v in summary.items() if k != "max_ms"},
        "max_ms": summary["max_ms"],
        "profile_p50_ms": profile["p50_ms"],
        "profile_p99_ms": profile["p99_ms"],
        "served_from": measured["sources"],
        "max_lag": max((lag for _, lag in measured["lag_samples"]), default=0),
        f"target_p99_le_{target_ms}ms": summary["p99_ms"] <= target_ms,
    }
    name = "freshness" if shape == "shoppers" else f"freshness-{shape}"
    path = write_results(name, result, out)
    samples = measured["lag_samples"]
    png = line_plot(
        path,
        f"Consumer lag at {rate:,.0f} ev/s (p99 freshness {summary['p99_ms']:.0f} ms)",
        [t for t, _ in samples],
        {"events not yet handled": [float(v) for _, v in samples]},
        "seconds",
        "events",
    )
    rows = [(k, _shown(v)) for k, v in result.items()]
    print_table([*rows, ("json", str(path)), ("plot", str(png))])
    return result


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "met" if value else "MISSED"
    return f"{value:,}" if isinstance(value, int | float) else str(value)
