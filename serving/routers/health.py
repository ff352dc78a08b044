"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import Response
from redis.exceptions import BusyLoadingError, RedisError

from currents import keys
from currents.redis_client import describe_error, tls_options
from currents.redis_loading import Loading, loading_state
from currents.settings import Settings
from serving.deps import MetricsDep, ProducerDep, RedisDep, RulesDep, SettingsDep
from serving.models import ReadinessResponse
from serving.responses import OrjsonResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=ReadinessResponse)
async def healthz() -> OrjsonResponse:
    return OrjsonResponse({"status": "ok", "reasons": []})


@router.get(
    "/readyz",
    response_model=ReadinessResponse,
    responses={503: {"model": ReadinessResponse, "description": "Not ready, with reasons"}},
)
async def readyz(
    redis: RedisDep, producer: ProducerDep, settings: SettingsDep, rules: RulesDep
) -> OrjsonResponse:
    reasons: list[str] = []
    try:
        await redis.ping()
        live_since = int(time.time() * 1000) - int(settings.worker_heartbeat_s * 3000)
        workers = await redis.zcount(
            keys.worker_heartbeats(settings.worker_group), live_since, "+inf"
        )
        if not workers:
            reasons.append("no worker has joined the consumer group yet")
    except BusyLoadingError:
        reasons.append(await _loading_reason(settings))
    except (RedisError, OSError) as error:
        reasons.append(f"redis unreachable: {describe_error(error)}")
    if not producer.connected:
        reasons.append("broker unreachable: the producer is not connected yet")
    elif not await producer.ping():
        reasons.append("broker unreachable: metadata request failed")
    currencies = {"base": rules.base_currency, "accepted": rules.accepted_currencies()}
    if reasons:
        return OrjsonResponse(
            {"status": "not ready", "reasons": reasons, "currencies": currencies}, status_code=503
        )
    return OrjsonResponse({"status": "ready", "reasons": [], "currencies": currencies})


async def _loading_reason(settings: Settings) -> str:
    url = settings.redis_url or ""
    try:
        return (await loading_state(url, **tls_options(url, settings))).describe()
    except (RedisError, OSError):
        return Loading(None, None).describe()


@router.get("/metrics", response_class=Response)
async def metrics(redis: RedisDep, api_metrics: MetricsDep) -> Response:
    try:
        counters = await redis.hgetall(keys.counters())
    except (RedisError, OSError):
        counters = {}
    return Response(api_metrics.render(counters), media_type="text/plain; version=0.0.4")
