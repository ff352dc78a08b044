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
from online_models.arrays import decode
from online_models.ranking import Ranker, build_models, catalog_for
from profiles.query import query_from_state
from schemas.profile import UserState


class PromotionItems:
    def __init__(self, redis: AsyncRedis, settings: Settings) -> None:
        self.redis = redis
        models = build_models(settings)
        self.ranker = Ranker(models, settings.blend)
        self.catalog = catalog_for(models)

    async def recommend(self, user_id: str, state: UserState, n: int, now: int) -> list[str]:
        """The user's top ``n`` recommended items, purchased items excluded."""
        query = query_from_state(user_id, state, now)
        ranker, catalog = self.ranker, self.catalog
        candidates = decode(await fetch_reads(self.redis, ranker.candidate_reads(query)), catalog)
        pool = ranker.pool(query, candidates, catalog, query.purchased)
        if not len(pool):
            return []
        reads = ranker.item_reads(query, catalog.items.names_of(pool.codes))
        items = decode(await fetch_reads(self.redis, reads), catalog)
        return ranker.rank(query, pool, {**candidates, **items}, catalog, limit=n).items

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
