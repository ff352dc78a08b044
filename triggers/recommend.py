"""Items for promotions: recommended items through the hybrid recommender, and the catalog
facts (title, price) that message templates and the promotion carry.

Runs in the worker after the engine decided, only for the promotions that ask for items
(two or three pipelined round trips per batch that has such promotions).
"""

from __future__ import annotations

from typing import Any

from currents import keys
from currents.redis_client import AsyncRedis
from currents.redis_reads import fetch_reads
from currents.settings import Settings
from online_models.hybrid import Hybrid, build_models
from profiles.query import query_from_state
from schemas.profile import UserState


class PromotionItems:
    def __init__(self, redis: AsyncRedis, settings: Settings) -> None:
        self.redis = redis
        self.hybrid = Hybrid(build_models(settings), settings.blend)

    async def recommend(self, user_id: str, state: UserState, n: int, now: int) -> list[str]:
        """The user's top ``n`` recommended items, purchased items excluded."""
        query = query_from_state(user_id, state, now)
        proposals = self.hybrid.propose(
            query, await fetch_reads(self.redis, self.hybrid.candidate_reads(query))
        )
        for item in query.purchased:
            proposals.pop(item, None)
        if not proposals:
            return []
        item_state = await fetch_reads(self.redis, self.hybrid.item_reads(query, list(proposals)))
        return [r.item_id for r in self.hybrid.rank(query, proposals, item_state, limit=n)]

    async def records(self, item_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Title and price of catalog items (unknown items are left out)."""
        if not item_ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for item in item_ids:
            pipe.hmget(keys.item_record(item), ["title", "price"])
        found: dict[str, dict[str, Any]] = {}
        for item, (title, price) in zip(item_ids, await pipe.execute(), strict=True):
            record: dict[str, Any] = {}
            if title:
                record["title"] = _text(title)
            if price:
                record["price"] = float(price)
            if record:
                found[item] = record
        return found


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
