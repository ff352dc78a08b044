"""The demo storefront (``/``) and operator dashboard (``/dashboard``): static pages, no
build step. They call the public API from the browser with an API key:

- the storefront gets a read+ingest key from ``/demo-config.js`` when the API runs with
  ``CURRENTS_DEMO_PAGE_KEY`` (``currents up --demo`` sets it); otherwise it asks for one;
- the dashboard asks the operator for an admin key (kept in ``sessionStorage``) for the
  admin-only panels; without one it shows only the public ``/metrics``.

Every page carries a Content-Security-Policy that allows nothing from outside this origin.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from pathlib import Path as FilePath
from typing import Annotated, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import Response

from currents import keys
from currents.kafka_security import client_options
from currents.settings import Settings
from currents.text import as_text
from serving.campaign_store import CampaignStore
from serving.deps import AdminKey, ConfigDep, RedisDep, SegmentStoreDep, SettingsDep
from serving.experiments import variant_stats
from serving.responses import OrjsonResponse
from serving.security import authenticate

log = logging.getLogger("currents.api.web")
router = APIRouter(tags=["web"])
LAG_CACHE_S = 2.0

STATIC = FilePath(__file__).resolve().parent.parent / "web" / "static"
ASSET_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}\.(js|css|svg)$"
MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _file(name: str) -> Response:
    path = STATIC / name
    if not re.fullmatch(r"[a-z0-9_-]+\.(html|js|css|svg)", name) or not path.is_file():
        raise HTTPException(404, "no such page")
    media_type = MEDIA_TYPES[name.rsplit(".", 1)[1]]
    return Response(path.read_bytes(), media_type=media_type, headers=SECURITY_HEADERS)


@router.get("/", include_in_schema=False)
async def storefront() -> Response:
    return _file("index.html")


@router.get("/dashboard", include_in_schema=False)
async def dashboard() -> Response:
    return _file("dashboard.html")


@router.get("/static/{name}", include_in_schema=False)
async def asset(name: Annotated[str, Path(pattern=ASSET_NAME)]) -> Response:
    return _file(name)


@router.get("/demo-config.js", include_in_schema=False)
async def demo_config(request: Request, settings: SettingsDep) -> Response:
    """The storefront's key, only when the API runs in demo mode (read+ingest, never admin:
    a configured key that carries the admin scope, or that is unknown, is not handed out)."""
    key = settings.demo_page_key
    known = authenticate(request.app.state.api_keys, key) if key else None
    config = {"apiKey": key if known is not None and "admin" not in known.scopes else None}
    body = f"window.CURRENTS_CONFIG = {json.dumps(config)};\n"
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
    return Response(body, media_type=MEDIA_TYPES["js"], headers=headers)


# --- the dashboard's admin data -------------------------------------------------------------
async def consumer_lag(settings: Settings, bootstrap: str) -> dict[str, Any]:
    """Per-partition lag of the worker group: high watermark minus committed offset.

    The probe only assigns partitions (it never joins the group, never commits) and reads
    the high watermark from a tiny fetch at the committed position, because Tansu's
    ListOffsets answer is unreliable."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=settings.worker_group,
        enable_auto_commit=False,
        max_partition_fetch_bytes=1,
        fetch_max_bytes=1,
        request_timeout_ms=3000,
        **client_options(settings),
    )
    await consumer.start()
    try:
        partitions = sorted(consumer.partitions_for_topic(settings.events_topic) or ())
        tps = [TopicPartition(settings.events_topic, p) for p in partitions]
        consumer.assign(tps)
        committed: dict[int, int] = {}
        for tp in tps:
            committed[tp.partition] = await consumer.committed(tp) or 0
            consumer.seek(tp, committed[tp.partition])
        await consumer.getmany(timeout_ms=300)
        lag = {
            str(p): max(0, (consumer.highwater(tp) or done) - done)
            for tp in tps
            if (done := committed[(p := tp.partition)]) is not None
        }
        return {"total": sum(lag.values()), "partitions": lag}
    finally:
        await consumer.stop()


async def cached_lag(request: Request, settings: Settings) -> dict[str, Any] | None:
    """At most one probe per ``LAG_CACHE_S`` however many dashboards are open."""
    state = request.app.state
    cached = getattr(state, "dashboard_lag", None)
    if cached is not None and time.monotonic() - cached[0] < LAG_CACHE_S:
        return cached[1]
    bootstrap, _ = settings.require_servers()
    try:
        lag: dict[str, Any] | None = await asyncio.wait_for(consumer_lag(settings, bootstrap), 5)
    except (KafkaError, OSError, TimeoutError) as error:
        log.warning("consumer lag probe failed", extra={"error": type(error).__name__})
        lag = None
    state.dashboard_lag = (time.monotonic(), lag)
    return lag


@router.get("/v1/dashboard", tags=["admin"])
async def dashboard_data(
    request: Request,
    _key: AdminKey,
    settings: SettingsDep,
    redis: RedisDep,
    config: ConfigDep,
    segments: SegmentStoreDep,
) -> OrjsonResponse:
    """Everything the operator dashboard shows that needs the admin scope: consumer lag,
    segment sizes, campaign counters (sent, holdout, no consent, capped) and experiment
    stats. Rates and latencies come from the public ``/metrics``."""
    await config.refresh()
    campaigns = await CampaignStore(redis).all()
    pipe = redis.pipeline(transaction=False)
    for campaign in campaigns:
        pipe.hgetall(keys.campaign_stats(campaign["id"]))
    campaign_counts = await pipe.execute() if campaigns else []
    experiments = []
    for experiment in sorted(config.experiments.values(), key=lambda e: e.name):
        counts = await config.experiment_counts(experiment.name)
        experiments.append(
            {
                "name": experiment.name,
                "active": experiment.active,
                "variants": variant_stats(experiment, counts),
            }
        )
    return OrjsonResponse(
        {
            "consumer_lag": await cached_lag(request, settings),
            "segments": [{"name": s["name"], "size": s["size"]} for s in await segments.all()],
            "campaigns": [
                {
                    "id": campaign["id"],
                    "name": campaign["campaign"]["name"],
                    "active": campaign["campaign"].get("active", True),
                    "stats": {as_text(k): int(v) for k, v in counts.items()},
                }
                for campaign, counts in zip(campaigns, campaign_counts, strict=True)
            ],
            "experiments": experiments,
        }
    )
