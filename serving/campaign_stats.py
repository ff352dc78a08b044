"""Per-campaign measurement read from Redis (counters written by the worker)."""

from __future__ import annotations

from typing import Any

from currents import keys
from currents.redis_client import AsyncRedis
from currents.text import as_text
from triggers.measure import campaign_stats


async def read_stats(redis: AsyncRedis, campaign_id: str) -> dict[str, Any]:
    raw = await redis.hgetall(keys.campaign_stats(campaign_id))
    counters = {as_text(name): int(value) for name, value in raw.items()}
    return {"id": campaign_id, **campaign_stats(counters)}
