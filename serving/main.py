"""The FastAPI application: clients are created in the lifespan and closed there."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from redis.exceptions import RedisError

from currents import __version__, kafka_security
from currents.gc_tuning import tune_for_batches
from currents.redis_client import create_redis, tls_options
from currents.redis_lean import request_commands
from currents.settings import Settings, load_settings
from online_models import kernels
from profiles.rules import ProfileRules
from profiles.segments import load_segments_file
from serving.body_limit import BodyLimitMiddleware
from serving.catalog_cache import CatalogFollower
from serving.config_store import ConfigStore
from serving.metrics import ApiMetrics, LatencyMiddleware
from serving.models import COMMON_ERRORS
from serving.privacy import PrivacyService
from serving.producer import EventProducer
from serving.profiles import ProfileReader
from serving.rate_limit import RateLimiter
from serving.recommend import Recommender
from serving.responses import OrjsonResponse
from serving.routers import (
    admin,
    campaigns,
    events,
    health,
    items,
    privacy,
    segments,
    users,
    web,
)
from serving.security import parse_api_keys
from serving.segment_store import SegmentStore

log = logging.getLogger("currents.api")


async def load_segment_file(store: SegmentStore, path: Path) -> None:
    """Upsert the file's definitions (unchanged ones are left alone, so no backfill)."""
    for definition in load_segments_file(path):
        await store.put(definition.name, definition.condition, definition.description)
    log.info("segment definitions loaded", extra={"file": str(path)})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    bootstrap, redis_url = settings.require_servers()
    api_keys = parse_api_keys(settings.api_keys)
    if not api_keys:
        log.warning("no API keys configured: every /v1 route will answer 401")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tls = tls_options(redis_url, settings)
        app.state.redis = create_redis(redis_url, **tls)
        # The recommendations route's read and best-effort writes (currents/redis_lean.py).
        app.state.request_commands = request_commands(redis_url, tls, app.state.redis)
        app.state.producer = EventProducer(
            bootstrap,
            settings.events_topic,
            idempotent=settings.producer_idempotence,
            client_options=kafka_security.client_options(settings),
        )
        await app.state.producer.start()
        app.state.config = ConfigStore(app.state.redis)
        await app.state.config.start()
        app.state.recommender = Recommender(
            app.state.redis,
            settings,
            app.state.config,
            app.state.metrics.count_recommendation,
            commands=app.state.request_commands,
        )
        app.state.catalog = CatalogFollower(app.state.redis, app.state.recommender.cache)
        app.state.catalog.start()
        app.state.profiles = ProfileReader(app.state.redis, app.state.rules)
        app.state.segments = SegmentStore(app.state.redis)
        app.state.rate_limiter = RateLimiter(app.state.redis, settings.rate_limit_per_s)
        app.state.privacy = PrivacyService(
            app.state.redis, app.state.producer, app.state.profiles, settings
        )
        if settings.segments_file is not None:
            await load_segment_file(app.state.segments, settings.segments_file)
        # Erasure markers of earlier versions held the raw id: rename them (once; a
        # Redis that is still loading or away leaves them for the next start).
        with contextlib.suppress(RedisError, OSError):
            await app.state.privacy.rename_legacy_markers()
        # Start-up objects live as long as the process: keep the cyclic collector from
        # rescanning them on every collection, which shows up in request latency p99.
        # A recommendation allocates like a small batch (thousands of short-lived reads,
        # tuples and dicts, freed by reference counting): with the default first-generation
        # threshold the collector ran every few requests, ~0.3 ms of each one.
        tune_for_batches()
        # Compiled before the first request, not by it (loaded from numba's cache after
        # the first start).
        kernels.warm_up()
        rules = app.state.rules
        log.info(
            "api started",
            extra={
                "version": __version__,
                "base_currency": rules.base_currency,
                "currencies": rules.accepted_currencies(),
            },
        )
        try:
            yield
        finally:
            await app.state.catalog.stop()
            await app.state.config.stop()
            await app.state.producer.stop()
            await app.state.request_commands.aclose()
            await app.state.redis.aclose()

    app = FastAPI(
        title="Currents",
        version=__version__,
        summary="Real-time streaming personalization: events in, recommendations out.",
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
    )
    app.state.settings = settings
    # The worker's profile rules: ingest rejects what the worker would (profiles.fold.admit).
    app.state.rules = ProfileRules.from_settings(settings)
    app.state.api_keys = api_keys
    app.state.metrics = ApiMetrics()
    app.add_middleware(LatencyMiddleware, metrics=app.state.metrics)

    def body_limit(path: str) -> int:
        if path.rstrip("/") == "/v1/events":
            return settings.max_body_bytes
        return settings.max_request_body_bytes

    app.add_middleware(BodyLimitMiddleware, limit_for=body_limit)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["X-API-Key", "Content-Type"],
            max_age=600,
        )

    @app.exception_handler(405)
    async def method_not_allowed(request: Request, _error: Exception) -> OrjsonResponse:
        # Starlette names only the matched route's methods; HTTP wants the resource's.
        path = request.url.path
        allowed = sorted(
            {
                method
                for route in app.routes
                if isinstance(route, APIRoute) and route.path_regex.match(path)
                for method in route.methods or ()
            }
        )
        return OrjsonResponse(
            {"detail": "Method Not Allowed"},
            status_code=405,
            headers={"Allow": ", ".join(allowed)},
        )

    @app.exception_handler(RedisError)
    async def redis_unavailable(_request: Request, error: RedisError) -> OrjsonResponse:
        log.warning("redis error while serving", extra={"error": type(error).__name__})
        return OrjsonResponse(
            {"detail": "state store unavailable; retry shortly"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    for router in (
        events.router,
        users.router,
        privacy.router,
        items.router,
        segments.router,
        admin.router,
        campaigns.router,
    ):
        app.include_router(router, responses=COMMON_ERRORS)
    app.include_router(health.router)
    app.include_router(web.router, responses=COMMON_ERRORS)
    return app
