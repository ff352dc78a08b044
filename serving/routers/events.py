"""POST /v1/events: validate, pack per partition, produce, report per event."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Body, HTTPException, Request

from serving.deps import IngestKey, MetricsDep, ProducerDep, RulesDep, SettingsDep
from serving.ingest import plan_records
from serving.models import IngestResponse
from serving.producer import BrokerUnavailable
from serving.responses import OrjsonResponse

router = APIRouter(prefix="/v1/events", tags=["events"])

RETRY_AFTER_S = "2"

EVENTS_BODY_DOC: Any = Body(
    ...,
    description="One event object, or a JSON array of up to 500 events (at most 1 MB).",
    examples=[
        {
            "event_id": "3f1c…",
            "type": "product_viewed",
            "user_id": "u-42",
            "session_id": "s-1",
            "timestamp": "2026-11-22T10:00:00Z",
            "channel": "web",
            "properties": {"product_id": "sku-1"},
        }
    ],
)


async def read_body_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "",
    status_code=202,
    response_model=IngestResponse,
    responses={
        400: {"description": "Malformed JSON"},
        413: {"description": "Body too large"},
        422: {"model": IngestResponse, "description": "No event was valid"},
        503: {"description": "The broker cannot take events now; retry after Retry-After"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"type": "object"},
                            {"type": "array", "items": {"type": "object"}, "maxItems": 500},
                        ]
                    }
                }
            },
        }
    },
)
async def ingest_events(
    request: Request,
    _key: IngestKey,
    settings: SettingsDep,
    producer: ProducerDep,
    metrics: MetricsDep,
    rules: RulesDep,
) -> OrjsonResponse:
    body = await read_body_limited(request, settings.max_body_bytes)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise HTTPException(400, f"malformed JSON: {error}") from None
    events = payload if isinstance(payload, list) else [payload]
    if not events:
        return _nothing_accepted("the body holds no events")
    if len(events) > settings.max_events_per_request:
        limit = settings.max_events_per_request
        return _nothing_accepted(f"{len(events)} events; at most {limit} per request")
    try:
        plan = plan_records(events, producer.partitions, rules=rules)
    except BrokerUnavailable as error:
        raise HTTPException(503, str(error), headers={"Retry-After": RETRY_AFTER_S}) from None

    rejected = list(plan.rejected)
    accepted = plan.accepted
    if plan.records:
        try:
            delivered = await producer.send(plan.records)
        except BrokerUnavailable as error:
            raise HTTPException(503, str(error), headers={"Retry-After": RETRY_AFTER_S}) from None
        for record, ok in zip(plan.records, delivered, strict=True):
            if ok:
                continue
            accepted -= len(record.indexes)
            for index in record.indexes:
                raw = events[index]
                rejected.append(
                    {
                        "index": index,
                        "event_id": raw.get("event_id") if isinstance(raw, dict) else None,
                        "error": "broker unavailable: not stored, retry this event",
                    }
                )
        if accepted == 0:
            raise HTTPException(
                503,
                "the broker did not acknowledge the events; retry",
                headers={"Retry-After": RETRY_AFTER_S},
            )
    metrics.ingested.inc(accepted)
    if plan.rejected:
        metrics.rejected.labels("invalid").inc(len(plan.rejected))
    rejected.sort(key=lambda r: r["index"])
    return OrjsonResponse(
        {"accepted": accepted, "rejected": rejected}, status_code=202 if accepted else 422
    )


def _nothing_accepted(detail: str) -> OrjsonResponse:
    return OrjsonResponse({"detail": detail, "accepted": 0, "rejected": []}, status_code=422)
