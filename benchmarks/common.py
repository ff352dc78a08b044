"""Shared benchmark plumbing: servers (embedded unless configured), results and plots."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from currents.embedded import ServerProcess, start_broker, start_redis
from currents.redis_client import tls_options
from currents.redis_loading import wait_until_loaded_sync
from currents.settings import Settings

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
            tls = tls_options(redis_url, client_settings(redis_url=redis_url))
            wait_until_loaded_sync(redis_url, "benchmark", say=print, **tls)
            yield BenchServers(bootstrap, redis_url)
        finally:
            for server in reversed(started):
                server.stop()


def client_settings(bootstrap: str | None = None, redis_url: str | None = None) -> Settings:
    """Settings for a benchmark's own clients of these servers. TLS and SASL come from this
    process's ``CURRENTS_*`` environment, as they do for the engine processes it starts."""
    servers = {"kafka_bootstrap": bootstrap, "redis_url": redis_url}
    return Settings.model_validate({name: value for name, value in servers.items() if value})


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
    return _save(figure, path)


def print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


def grouped_bar_plot(
    path: Path,
    title: str,
    groups: list[str],
    series: dict[str, list[float]],
    unit: str,
    *,
    log_scale: bool = False,
) -> Path:
    """Bars of several series side by side per group; the PNG goes next to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(1, len(series))
    for index, (name, values) in enumerate(series.items()):
        positions = [g + index * width - 0.4 + width / 2 for g in range(len(groups))]
        bars = axis.bar(positions, values, width, label=name)
        axis.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=7)
    axis.set_xticks(range(len(groups)), groups)
    if log_scale:
        axis.set_yscale("log")
    axis.set_ylabel(unit)
    axis.set_title(title)
    axis.legend()
    return _save(figure, path)


def line_plot(
    path: Path, title: str, x: list[float], series: dict[str, list[float]], xlabel: str, unit: str
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.5))
    for name, values in series.items():
        axis.plot(x, values, marker="o", label=name)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(unit)
    axis.set_title(title)
    axis.legend()
    return _save(figure, path)


def _save(figure: Any, path: Path) -> Path:
    """Write ``figure`` as the PNG beside ``path`` and free it."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    png = path.with_suffix(".png")
    figure.savefig(png, dpi=110)
    plt.close(figure)
    return png


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0-100) of ``values``; 0.0 when empty.

    >>> percentile([5, 1, 4, 2, 3], 50), percentile([5, 1, 4, 2, 3], 100)
    (3, 5)
    >>> percentile(list(range(1, 101)), 99)
    99
    """
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(round(q / 100 * len(ordered), 9)))  # no float noise
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(latencies_ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(latencies_ms, 50), 3),
        "p95_ms": round(percentile(latencies_ms, 95), 3),
        "p99_ms": round(percentile(latencies_ms, 99), 3),
        "max_ms": round(max(latencies_ms, default=0.0), 3),
    }


def schedule(rate: float, duration_s: float) -> list[float]:
    """Open-loop send times (seconds from the start) at a constant arrival rate.

    >>> schedule(4, 1)
    [0.0, 0.25, 0.5, 0.75]
    """
    return [i / rate for i in range(int(rate * duration_s))]


def corrected_latency(scheduled_s: float, completed_s: float) -> float:
    """Latency counted from when the request was due, not from when it could be sent, so a
    stalled server is charged for every request it held up (no coordinated omission).

    >>> corrected_latency(1.0, 1.004)
    4.0
    """
    return round((completed_s - scheduled_s) * 1000, 6)
