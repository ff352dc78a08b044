"""Shared benchmark plumbing: servers (embedded unless configured), results and plots."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from currents.embedded import ServerProcess, start_broker, start_redis

RESULTS_DIR = Path("benchmarks/results")


@dataclass
class BenchServers:
    bootstrap: str | None
    redis_url: str


@contextlib.contextmanager
def bench_servers(need_broker: bool = True) -> Iterator[BenchServers]:
    """The servers named by CURRENTS_* or embedded ones on loopback, stopped afterwards."""
    started: list[ServerProcess] = []
    with tempfile.TemporaryDirectory(prefix="currents-bench-") as data:
        try:
            bootstrap = os.environ.get("CURRENTS_KAFKA_BOOTSTRAP")
            redis_url = os.environ.get("CURRENTS_REDIS_URL")
            if need_broker and not bootstrap:
                broker = start_broker(Path(data))
                started.append(broker)
                bootstrap = broker.address
            if not redis_url:
                redis = start_redis(Path(data), appendonly=False)
                started.append(redis)
                redis_url = redis.address
            yield BenchServers(bootstrap, redis_url)
        finally:
            for server in reversed(started):
                server.stop()


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_results(name: str, data: dict[str, Any], out: Path | None) -> Path:
    path = out or RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**data, "machine": machine()}, indent=2))
    return path


def bar_plot(path: Path, title: str, labels: list[str], values: list[float], unit: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.5))
    bars = axis.bar(labels, values, color="#2f6f9f")
    axis.bar_label(bars, labels=[f"{v:,.1f}" for v in values])
    axis.set_ylabel(unit)
    axis.set_title(title)
    figure.tight_layout()
    png = path.with_suffix(".png")
    figure.savefig(png, dpi=110)
    plt.close(figure)
    return png


def print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
