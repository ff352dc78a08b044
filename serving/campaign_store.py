"""Campaign definitions in Redis, with every version kept."""

from __future__ import annotations

import time
from typing import Any

import orjson

from currents import keys
from currents.redis_client import AsyncRedis, transactional
from triggers.campaigns import Campaign


class CampaignStore:
    def __init__(self, redis: AsyncRedis) -> None:
        self.redis = redis

    async def all(self) -> list[dict[str, Any]]:
        raw = await self.redis.hgetall(keys.campaigns())
        return sorted((orjson.loads(v) for v in raw.values()), key=lambda c: c["id"])

    async def get(self, campaign_id: str) -> dict[str, Any] | None:
        blob = await self.redis.hget(keys.campaigns(), campaign_id)
        return orjson.loads(blob) if blob else None

    async def versions(self, campaign_id: str) -> list[dict[str, Any]]:
        raw = await self.redis.lrange(keys.campaign_versions(campaign_id), 0, -1)
        return [orjson.loads(v) for v in raw]

    async def put(self, campaign_id: str, campaign: Campaign) -> tuple[dict[str, Any], bool]:
        """Store a new version; returns it and whether the campaign is new. An identical
        definition is not a new version."""
        current = await self.get(campaign_id)
        body = campaign.model_dump(mode="json")
        if current is not None and current["campaign"] == body:
            return current, False
        record = await self._append_version(campaign_id, body)
        return record, current is None

    async def delete(self, campaign_id: str) -> bool:
        current = await self.get(campaign_id)
        if current is None:
            return False
        await self._append_version(campaign_id, None)
        return True

    async def _append_version(
        self, campaign_id: str, body: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Record the next version (``None`` is a deletion) and make it current."""
        history = await self.redis.llen(keys.campaign_versions(campaign_id))
        record: dict[str, Any] = {
            "id": campaign_id,
            "version": int(history) + 1,
            "updated_at": int(time.time() * 1000),
            "campaign": body,
        }
        if body is None:
            record["deleted"] = True
        blob = orjson.dumps(record)
        pipe = self.redis.pipeline(transaction=transactional(self.redis))
        if body is None:
            pipe.hdel(keys.campaigns(), campaign_id)
        else:
            pipe.hset(keys.campaigns(), campaign_id, blob)
        pipe.rpush(keys.campaign_versions(campaign_id), blob)
        pipe.incr(keys.campaigns_version())
        await pipe.execute()
        return record
