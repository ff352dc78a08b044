"""`currents bench serving`: recommendation latency under open-loop load, while ingesting.

A worker and the API run as subprocesses. The catalog and a history of synthetic shoppers
are ingested first; then, while more events keep arriving at ``--ingest-rate``, a load
generator in its own process (benchmarks/loadgen.py) sends
``GET /v1/users/{id}/recommendations`` for a mix of known (80 %) and unknown (20 %) users:

- open loop at each rate of ``--rates`` for ``--step`` seconds, latency counted from each
  request's scheduled time (no coordinated omission);
- closed loop (32 connections) for the maximum throughput, against the recommendations
  route and against ``/healthz`` (no I/O) of the same server, the reference.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from tqdm import tqdm

from benchmarks.common import bench_servers, line_plot, print_table, write_results
from benchmarks.generator import SyntheticShop, user_id
from benchmarks.harness import (
    REPO,
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
from currents.kafka_security import client_options

HISTORY_EVENTS = 30_000
KNOWN_SHARE = 0.8
CONNECTIONS = 32
TICK_S = 0.05
NOOP_RATE = 1000.0
SLATES_WAIT_S = 180.0
SLATES_READY_SHARE = 0.9


def slate_stats(metrics_text: str) -> dict[str, Any]:
    """From the API's /metrics: how requests were answered (the shopper's slate, a shared
    slate, ranked on the spot and why), fallbacks per 1,000 requests, and the served
    slates' age p50/p99 (upper bounds of their histogram buckets)."""
    sources: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    buckets: list[tuple[float, float]] = []
    for line in metrics_text.splitlines():
        if line.startswith("currents_recommendations_total{"):
            labels, value = line[len("currents_recommendations_total{") :].rsplit("} ", 1)
            found = dict(part.split("=", 1) for part in labels.split(",") if "=" in part)
            source = found.get("source", "").strip('"')
            sources[source] += int(float(value))
            if source == "slate" and found.get("reason", "").strip('"') == "behind":
                reasons["served behind"] += int(float(value))
            if source == "ranked":
                reasons[found.get("reason", "").strip('"')] += int(float(value))
        elif line.startswith("currents_slate_age_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
    total = sum(sources.values())

    def quantile(q: float) -> float | None:
        served = buckets[-1][1] if buckets else 0
        for bound, cumulative in buckets:
            if served and cumulative >= q * served:
                return bound * 1000
        return None

    return {
        "requests": total,
        "by_source": dict(sources),
        "fallbacks_per_1000": round(1000 * sources["ranked"] / total, 1) if total else None,
        "fallback_reasons": dict(reasons),  # and "served behind": slates past the catch-up budget
        "slate_age_p50_ms_at_most": quantile(0.5),
        "slate_age_p99_ms_at_most": quantile(0.99),
    }


def request_paths(users: int, count: int = 5000, seed: int = 5) -> list[str]:
    """Recommendation paths for known users (those with history) and unknown ones.

    >>> paths = request_paths(100, count=1000)
    >>> sum("/user-" in p for p in paths) / len(paths) > 0.7
    True
    """
    rng = random.Random(seed)
    paths = []
    for _ in range(count):
        if rng.random() < KNOWN_SHARE:
            who = user_id(rng.randrange(users))
        else:
            who = f"stranger-{rng.randrange(10**9)}"
        paths.append(f"/v1/users/{who}/recommendations?n=10")
    return paths


async def _ingest(
    run: Run, shop: SyntheticShop, rate: float, stop: asyncio.Event, history: int
) -> int:
    """The catalog and ``history`` events at full speed, then ``rate`` events/s until
    ``stop``; returns events produced."""
    assert run.servers.bootstrap is not None
    topic, partitions = run.settings.events_topic, run.settings.events_partitions
    producer = AIOKafkaProducer(
        bootstrap_servers=run.servers.bootstrap,
        acks="all",
        linger_ms=5,
        **client_options(run.settings),
    )
    await producer.start()
    produced = 0

    async def send(events: list[dict[str, Any]]) -> None:
        nonlocal produced
        for key, value, partition in batched_records(events, partitions):
            await producer.send(topic, value, key=key, partition=partition)
        produced += len(events)

    try:
        now_ms = int(time.time() * 1000) - 3_600_000
        await send(shop.catalog_events(now_ms))
        sessions = shop.stream(now_ms, session_gap_ms=50, warm_up_users=shop.n_users)
        await send(list(islice(sessions, history)))
        await producer.flush()
        budget = 0.0
        while not stop.is_set():
            tick = time.monotonic()
            budget += rate * TICK_S
            count = int(budget)
            budget -= count
            stamp = int(time.time() * 1000)
            await send([dict(e, timestamp=stamp) for e in islice(sessions, count)])
            await asyncio.sleep(max(0.0, TICK_S - (time.monotonic() - tick)))
    finally:
        await producer.stop()
    return produced


async def _measure(
    run: Run, rates: list[float], step_s: float, ingest_rate: float, users: int, items: int
) -> dict[str, Any]:
    shop = SyntheticShop(users=users, items=items, seed=13)
    stop = asyncio.Event()
    history = min(HISTORY_EVENTS, users * 10)
    ingest = asyncio.create_task(_ingest(run, shop, ingest_rate, stop, history))
    counters = redis_client(run.servers.redis_url)
    try:
        wanted = items + history
        with tqdm(total=wanted, desc="history", unit="ev") as bar:
            done = 0
            while done < wanted:
                run.check_alive()
                if ingest.done():
                    await ingest  # surfaces a producer failure
                now = handled(counters)
                bar.update(now - done)
                done = now
                await asyncio.sleep(0.2)
        # A live shop's shoppers have slates from their own events; this one's history
        # arrived all at once, so wait (bounded) for the worker to rank nearly everyone.
        slates_started = time.monotonic()
        profiles = slates = 0
        with tqdm(desc="slates", unit="slate") as bar:
            while time.monotonic() - slates_started < SLATES_WAIT_S:
                run.check_alive()
                profiles = sum(1 for _ in counters.scan_iter("{u:*}:profile", count=1000))
                slates = sum(1 for _ in counters.scan_iter("{u:*}:slate", count=1000))
                bar.total = profiles
                bar.update(slates - bar.n)
                # New shoppers keep arriving with the ingest; the newest wait their turn.
                if slates >= SLATES_READY_SHARE * profiles:
                    break
                await asyncio.sleep(1.0)
        slates_wait_s = round(time.monotonic() - slates_started, 1)
        plan = {
            "host": "127.0.0.1",
            "port": int(run.api_url.rsplit(":", 1)[1]),
            "api_key": run.api_key,
            "paths": request_paths(users),
            "noop_path": "/healthz",
            "noop_rate": NOOP_RATE,
            "rates": rates,
            "step_s": step_s,
            "connections": CONNECTIONS,
        }
        plan_path, out_path = run.log_dir / "plan.json", run.log_dir / "loadgen.json"
        plan_path.write_bytes(orjson.dumps(plan))
        print(f"load generator: rates {rates}, {step_s:.0f} s each, ingest {ingest_rate:,.0f} ev/s")
        generator = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.loadgen", str(plan_path), str(out_path), cwd=REPO
        )
        if await generator.wait() != 0:
            raise SystemExit("the load generator failed")
        async with httpx.AsyncClient(
            base_url=run.api_url, headers={"X-API-Key": run.api_key}, timeout=10
        ) as client:
            scraped = (await client.get("/metrics")).text
        ingested_before = handled(counters)
        stop.set()
        produced = await ingest
        result: dict[str, Any] = orjson.loads(out_path.read_bytes())
        result["slates"] = slate_stats(scraped)
        result["slates"].update(
            {"profiles": profiles, "slates_before_load": slates, "waited_s": slates_wait_s}
        )
        result["ingested_events"] = produced
        result["handled_events"] = ingested_before
        return result
    finally:
        stop.set()
        counters.close()
        if not ingest.done():
            ingest.cancel()


# The niceness a worker sharing cores with the API and Redis should run at.
CO_LOCATED_NICE = 10


def worker_nice() -> str:
    """CURRENTS_WORKER_NICE as set for the benchmark, else :data:`CO_LOCATED_NICE`."""
    return os.environ.get("CURRENTS_WORKER_NICE", str(CO_LOCATED_NICE))


def run(
    rates: list[float],
    step_s: float,
    ingest_rate: float,
    users: int,
    items: int,
    out: Path | None,
) -> dict[str, Any]:
    with bench_servers() as servers, log_root() as logs:
        require_loopback(servers.bootstrap, servers.redis_url)
        require_empty(servers.redis_url)
        asyncio.run(load_definitions(servers.redis_url))
        # Everything shares the machine's cores here, as on one host: the worker runs at
        # the niceness docs/performance.md recommends for that (CURRENTS_WORKER_NICE).
        engine = new_run(servers, logs, CURRENTS_WORKER_NICE=worker_nice())
        try:
            engine.spawn("worker", "worker")
            engine.spawn("api", "api")
            engine.wait_api()
            measured = asyncio.run(_measure(engine, rates, step_s, ingest_rate, users, items))
        finally:
            engine.stop()
            flush(servers.redis_url)
    max_rps, noop_max = measured["max"]["rps"], measured["noop_max"]["rps"]
    at_1000 = next((r for r in measured["rates"] if r["rps"] == 1000), None)
    noop_1000 = next((r for r in measured["noop_rates"] if r["rps"] == 1000), None)
    p99_ratio = (
        round(at_1000["p99_ms"] / noop_1000["p99_ms"], 2)
        if at_1000 and noop_1000 and noop_1000["p99_ms"]
        else None
    )
    result = {
        "rates": measured["rates"],
        "max_rps": max_rps,
        "noop_max_rps": noop_max,
        "ratio": round(max_rps / noop_max, 3) if noop_max else 0.0,
        "noop_rates": measured["noop_rates"],
        "p99_ratio_at_1000rps": p99_ratio,
        "slates": measured["slates"],
        "worker_nice": int(worker_nice()),
        "ingest_rate": ingest_rate,
        "users": users,
        "targets": {
            "max_rps_ge_0.5_noop": bool(noop_max and max_rps >= 0.5 * noop_max),
            "p99_le_2x_noop_at_1000rps": bool(p99_ratio is not None and p99_ratio <= 2),
            "p99_le_10ms_at_1000rps": bool(at_1000 and at_1000["p99_ms"] <= 10),
        },
    }
    path = write_results("serving", result, out)
    png = line_plot(
        path,
        f"Recommendations, open loop, ingesting {ingest_rate:,.0f} ev/s",
        [r["rps"] for r in result["rates"]],
        {
            "p50": [r["p50_ms"] for r in result["rates"]],
            "p99": [r["p99_ms"] for r in result["rates"]],
        },
        "offered requests/s",
        "ms (from scheduled send)",
    )
    rows = [
        (
            f"{r['rps']:,.0f} rps",
            f"p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:8.2f} ms  errors {r['errors']}",
        )
        for r in result["rates"]
    ]
    rows += [
        ("max rps (reco)", f"{max_rps:,}"),
        ("max rps (noop)", f"{noop_max:,}"),
        ("ratio", str(result["ratio"])),
        ("p99 ratio at 1,000 rps", str(p99_ratio)),
        ("fallbacks per 1,000", str(result["slates"]["fallbacks_per_1000"])),
        ("fallback reasons", str(result["slates"]["fallback_reasons"])),
        (
            "slate age p50 / p99",
            f"≤ {result['slates']['slate_age_p50_ms_at_most']} ms / "
            f"≤ {result['slates']['slate_age_p99_ms_at_most']} ms",
        ),
    ]
    rows += [(k, "met" if v else "MISSED") for k, v in result["targets"].items()]
    print_table([*rows, ("json", str(path)), ("plot", str(png))])
    return result
