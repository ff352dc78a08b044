"""Prometheus metrics: request latency by route template (never by raw path, so no user
ids reach labels), plus the worker's counters read from Redis at scrape time."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from currents.text import as_text

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

# Worker counters kept in Redis (hash currents:counters) and how /metrics exposes them.
WORKER_COUNTERS = {
    "events_processed": ("currents_events_processed_total", "Events applied by the worker."),
    "duplicates": ("currents_events_duplicate_total", "Redelivered or repeated events skipped."),
    "dlq": ("currents_dlq_total", "Messages sent to the dead-letter topic."),
    "rejected": (
        "currents_events_rejected_by_worker_total",
        "Valid events refused (e.g. currency).",
    ),
    "late_events": (
        "currents_late_events_total",
        "Events older than the lateness (not sessioned).",
    ),
    "traits_dropped": (
        "currents_traits_dropped_total",
        "identify traits dropped (not whitelisted).",
    ),
    "users": ("currents_profiles_created_total", "User profiles created."),
    "slates": ("currents_slates_built_total", "Shoppers' slates ranked and written."),
}


SLATE_AGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "currents_http_request_duration_seconds",
            "HTTP request latency in seconds.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ingested = Counter(
            "currents_events_ingested_total",
            "Events accepted by POST /v1/events and produced to the broker.",
            registry=self.registry,
        )
        self.rejected = Counter(
            "currents_events_rejected_total",
            "Events rejected by POST /v1/events.",
            ["reason"],
            registry=self.registry,
        )

        self.recommendations = Counter(
            "currents_recommendations_total",
            "Recommendations served, by source (slate, shared, ranked) and, for rankings "
            "made on the spot, why the slate could not answer (slate/behind: served "
            "although behind, past the catch-up budget).",
            ["source", "reason"],
            registry=self.registry,
        )

        self.slate_age = Histogram(
            "currents_slate_age_seconds",
            "Age of the slate a recommendation was served from (shopper's or shared).",
            buckets=SLATE_AGE_BUCKETS,
            registry=self.registry,
        )

    def count_recommendation(self, source: str, reason: str, slate_age_ms: int | None) -> None:
        self.recommendations.labels(source, reason).inc()
        if slate_age_ms is not None and source != "ranked":
            self.slate_age.observe(slate_age_ms / 1000)

    def render(self, worker_counters: Mapping[Any, Any]) -> bytes:
        lines = []
        decoded = {as_text(k): int(v) for k, v in worker_counters.items()}
        for field, (name, help_text) in WORKER_COUNTERS.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            lines.append(f"{name} {decoded.get(field, 0)}")
        name = "currents_events_by_type_total"
        lines += [f"# HELP {name} Events applied, by type.", f"# TYPE {name} counter"]
        for field, value in sorted(decoded.items()):
            if field.startswith("type:"):
                lines.append(f'{name}{{type="{field[5:]}"}} {value}')
        return generate_latest(self.registry) + ("\n".join(lines) + "\n").encode()


class LatencyMiddleware:
    """Pure ASGI middleware, cheaper than BaseHTTPMiddleware on the hot path."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.latency.labels(scope["method"], template, str(status["code"])).observe(
                time.perf_counter() - started
            )
