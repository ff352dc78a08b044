"""`currents bench pipeline --shape heavy-baskets`: one worker on a grocery backfill.

The catalog (default 23,812 items, as the replayed log had), then N orders of 1-80 lines
from weekly regulars and occasional customers (benchmarks/heavy_baskets.py), packed as
``POST /v1/events`` packs them (500-event requests, one record per partition each), are
produced to a fresh topic before the worker starts. The worker (every model, the example
segments and campaigns) is timed from the moment it has handled the catalog until it has
handled every order: orders/s and order lines/s. Target: >= 1,000 orders/s.

The worker's log is searched for the signs of a stall (``event loop blocked``, ``redis
unavailable``, overlapping timers) and their count reported.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from benchmarks.common import bar_plot, bench_servers, print_table, write_results
from benchmarks.harness import (
    batched_records,
    flush,
    load_definitions,
    log_root,
    new_run,
    produce,
    require_empty,
    require_loopback,
)
from benchmarks.heavy_baskets import heavy_basket_events
from benchmarks.pipeline import worker_rate

TARGET_ORDERS_PER_S = 1000
STALL_SIGNS = ("event loop blocked", "redis unavailable", "is overlapping", "Executing <")


def run(
    orders: int,
    customers: int,
    items: int,
    partitions: int,
    timeout_s: float,
    out: Path | None,
) -> dict[str, Any]:
    items = items if items > 2_000 else 23_812  # the CLI's default catalog is a shoppers' one
    with bench_servers() as servers, log_root() as logs:
        assert servers.bootstrap is not None
        require_loopback(servers.bootstrap, servers.redis_url)
        require_empty(servers.redis_url)
        print(f"generating {orders:,} orders ({customers:,} customers, {items:,} items)")
        events = heavy_basket_events(orders, customers, items, end_ms=int(time.time() * 1000))
        catalog = sum(1 for e in events if e["type"] == "item_upserted")
        lines = sum(len(e["properties"].get("products", ())) for e in events)
        engine = new_run(servers, logs, partitions=partitions)
        records = batched_records(events, partitions)
        topic = engine.settings.events_topic
        asyncio.run(produce(servers.bootstrap, topic, records, desc="produce heavy baskets"))
        asyncio.run(load_definitions(servers.redis_url))
        timed = worker_rate(engine, len(events), timeout_s, after=catalog)
        log = (engine.log_dir / "worker-0.log").read_text(errors="replace")
        flush(servers.redis_url)
    seconds = timed["seconds"] or float("nan")
    result: dict[str, Any] = {
        "shape": "heavy-baskets",
        "orders": orders,
        "order_lines": lines,
        "lines_per_order": round(lines / max(1, orders), 2),
        "catalog_items": catalog,
        "customers": customers,
        "partitions": partitions,
        "records": len(records),
        "seconds": round(timed["seconds"], 2),
        "complete": timed["complete"],
        "orders_per_s": round(orders / seconds),
        "order_lines_per_s": round(lines / seconds),
        "stall_signs": {sign: log.count(sign) for sign in STALL_SIGNS},
        "stall_lines": [line for line in log.splitlines() if any(s in line for s in STALL_SIGNS)][
            :5
        ],
        "targets": {"orders_ge_1000_per_s": orders / seconds >= TARGET_ORDERS_PER_S},
    }
    path = write_results("pipeline-heavy-baskets", result, out)
    png = bar_plot(
        path,
        f"One worker, {orders:,} grocery orders ({result['lines_per_order']} lines each)",
        ["orders/s", "target"],
        [float(result["orders_per_s"]), float(TARGET_ORDERS_PER_S)],
        "orders/s",
    )
    rows = [(k, str(v)) for k, v in result.items() if k != "targets"]
    rows += [(k, "met" if v else "MISSED") for k, v in result["targets"].items()]
    print_table([*rows, ("json", str(path)), ("plot", str(png))])
    return result
