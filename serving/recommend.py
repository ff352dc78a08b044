"""Serve recommendations through the ranking pipeline in a fixed number of pipelined
round trips:

1. the user's state blob and MF vector (one MGET: both carry the user's hash tag);
2. every model's candidate reads (neighbour lists, trending scopes, new arrivals…);
3. every model's item reads for the bounded candidate pool, plus the catalog records of
   candidates and of the items reasons refer to.

The number of round trips never depends on catalog size or history length; 2 and 3 only
go to Redis for the shared reads the per-process cache (serving/cache.py) does not hold.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import astuple, dataclass, field
from typing import Any

from currents import keys
from currents.redis_client import AsyncRedis
from currents.settings import Settings
from online_models.arrays import Catalog, Scores
from online_models.base import Query, Read, get, hgetall, item_record_read
from online_models.cooccurrence import KINDS
from online_models.ranking import Pool, Ranked, Ranker, build_models, catalog_for
from online_models.selection import Exclude, Filters, passes, select
from profiles.consent import personalization_allowed
from profiles.query import query_from_state
from schemas.profile import UserState
from serving.cache import ColdStartCache, ReadCache
from serving.config_store import ConfigStore, recommendation_record
from serving.experiments import Experiment, Variant, assign
from serving.served_records import ServedRecords

RECORD_TTL_S = 7 * 86_400
__all__ = ["Exclude", "Filters", "Recommendation", "Recommender"]


@dataclass
class Recommendation:
    recommendation_id: str
    user_id: str
    personalized: bool
    items: list[dict[str, Any]] = field(default_factory=list)


def _record(state: Mapping[Read, Any], item: str) -> dict[str, str]:
    return state.get(item_record_read(item)) or {}


@dataclass
class Scoring:
    """A request's pool, ready to rank all of it or only its head (``limit``)."""

    ranker: Ranker
    query: Query
    pool: Pool
    state: dict[Read, Any]
    catalog: Catalog

    def rank(self, limit: int | None) -> Ranked:
        return self.ranker.rank(self.query, self.pool, self.state, self.catalog, limit)


class Recommender:
    def __init__(self, redis: AsyncRedis, settings: Settings, config: ConfigStore) -> None:
        self.redis = redis
        self.config = config
        models = build_models(settings)
        self.ranker = Ranker(models, settings.blend)
        self.catalog = catalog_for(models)
        # Shared model reads, per process and decoded (serving/cache.py).
        self.cache = ReadCache(self.catalog)
        self.cold_start = ColdStartCache()
        self.served = ServedRecords(redis, RECORD_TTL_S)

    async def query_for(
        self, user_id: str, now: int, **context: Any
    ) -> tuple[Query, UserState, dict[Read, Any]]:
        """The request's query, the user's state, and the user's own model reads already in
        hand. The MF vector comes with the state blob in one MGET (both keys carry the
        user's hash tag, so one slot on a Cluster too): it is the one item-stage read the
        shared cache never holds, so with it in hand a warm request skips that round trip."""
        factors = get(keys.user_factors(user_id))
        replies: list[bytes | None] = await self.redis.mget(  # type: ignore[assignment]
            [keys.user_profile(user_id), factors[1]]
        )
        blob, vector = replies
        state = UserState.from_bytes(blob)
        if not personalization_allowed(state):  # the shopper opted out: serve as anonymous
            return query_from_state(None, UserState(), now, **context), UserState(), {}
        return query_from_state(user_id, state, now, **context), state, {factors: vector}

    async def for_user(
        self,
        user_id: str,
        n: int,
        now: int,
        *,
        filters: Filters | None = None,
        context_item: str | None = None,
        blend: Mapping[str, float] | None = None,
    ) -> Recommendation:
        filters = filters or Filters()
        query, state, user_reads = await self.query_for(
            user_id, now, context_item=context_item, category=filters.category
        )
        experiment = self.config.active_experiment()
        variant = assign(experiment, user_id) if experiment else None
        if blend is None and variant is not None and variant.blend is not None:
            blend = variant.blend
        cold_key = None
        if not state.exists:  # a stranger (or opted out): nothing of theirs is ranked
            cold_key = (
                n,
                astuple(filters),
                context_item,
                experiment.name if experiment else None,
                variant.name if variant else None,
                tuple(sorted(blend.items())) if blend else None,
                self.config.version,  # rules and experiments as loaded
            )
        answer = self.cold_start.lookup(cold_key) if cold_key else None
        if answer is None:
            answer = await self._answer(query, state, user_reads, n, filters, context_item, blend)
            if cold_key:
                self.cold_start.store(cold_key, answer)
        items, personalized = answer
        recommendation_id = uuid.uuid4().hex
        served = [item["item_id"] for item in items]
        self._remember(recommendation_id, user_id, served, experiment, variant, now)
        return Recommendation(
            recommendation_id=recommendation_id,
            user_id=user_id,
            personalized=personalized,
            items=[dict(item) for item in items],
        )

    async def _answer(
        self,
        query: Query,
        state: UserState,
        user_reads: Mapping[Read, Any],
        n: int,
        filters: Filters,
        context_item: str | None,
        blend: Mapping[str, float] | None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """The response's items and whether anything personal shaped them."""
        ranker = self.ranker if blend is None else self.ranker.with_blend(blend)
        excluded: set[str] = set()
        if filters.exclude in {"purchased", "viewed"}:
            excluded |= query.purchased
        if filters.exclude == "viewed":
            excluded |= set(state.recent_item_ids())
        if context_item:
            excluded.add(context_item)
        rules = self.config.rules
        pinned = sorted({r.item_id for r in rules if r.kind == "pin" and r.item_id and r.active})
        scoring = await self._score(ranker, query, user_reads, excluded, pinned)
        pinned_records = {
            item: record
            for item in pinned
            if item not in excluded
            and (record := _record(scoring.state, item))
            and passes(record, filters)
        }
        personal: dict[str, bool] = {}

        def rank(limit: int | None) -> Ranked:
            ranked = scoring.rank(limit)
            personal.update(zip(ranked.items, ranked.personal, strict=True))
            return ranked

        _, final = select(
            rank,
            lambda item: _record(scoring.state, item),
            lambda ranked, i: self._reason(ranked, i),
            filters,
            rules,
            n,
            pinned_records,
        )
        items = [
            {"item_id": c.item_id, "score": round(c.score, 6), "reason": c.reason} for c in final
        ]
        return items, any(personal.get(c.item_id, False) for c in final)

    def _remember(
        self,
        recommendation_id: str,
        user_id: str,
        items: list[str],
        experiment: Experiment | None,
        variant: Variant | None,
        now: int,
    ) -> None:
        """Store the served list for attribution without holding up the response."""
        record = recommendation_record(
            user_id,
            items,
            experiment.name if experiment else None,
            variant.name if variant else None,
            now,
        )
        self.served.store(keys.recommendation(recommendation_id), record)

    async def _score(
        self,
        ranker: Ranker,
        query: Query,
        user_reads: Mapping[Read, Any],
        excluded: set[str],
        extra_items: list[str],
    ) -> Scoring:
        candidate_state = await self.cache.fetch(self.redis, ranker.candidate_reads(query))
        pool = ranker.pool(query, candidate_state, self.catalog, excluded)
        pooled = self.catalog.items.names_of(pool.codes)
        # Reasons name the items they come from: the shopper's history and session.
        sources = {item for item, _ in query.history} | set(query.session_items)
        if query.context_item:
            sources.add(query.context_item)
        reads = ranker.item_reads(query, pooled)
        reads += map(item_record_read, [*pooled, *sorted(sources), *extra_items])
        state = {**candidate_state, **await self.cache.fetch(self.redis, reads, user_reads)}
        return Scoring(ranker, query, pool, state, self.catalog)

    def _reason(self, ranked: Ranked, i: int) -> str:
        source = ranked.sources[i]
        if source is None:
            return ranked.reasons[i]
        return ranked.reasons[i] + self.catalog.title(self.catalog.items.find(source))

    async def similar(
        self, item_id: str, n: int, now: int, kinds: tuple[str, ...] = KINDS
    ) -> list[dict[str, Any]] | None:
        """Neighbours of ``item_id`` (co-occurrence kinds or ``content``); None if unknown."""
        cooccurrence = self.ranker.models["cooccurrence"]
        trending = self.ranker.models["trending"]
        reads: list[Read] = [hgetall(keys.item_record(item_id))]
        for kind in kinds:
            if kind in KINDS:
                reads += list(cooccurrence.neighbour_reads(item_id, kind, now))  # type: ignore[attr-defined]
        state = await self.cache.fetch(self.redis, reads)
        catalog = self.catalog
        record = _record(state, item_id)
        own = catalog.code(item_id)
        scores: dict[int, float] = {}
        reason_of: dict[int, str] = {}
        for kind in kinds:
            if kind not in KINDS:
                continue
            neighbours: Scores = cooccurrence.neighbours_of(item_id, kind, now, state)  # type: ignore[attr-defined]
            for other, value in zip(
                neighbours.codes.tolist(), neighbours.normalised.tolist(), strict=True
            ):
                if other != own and value > scores.get(other, 0.0):
                    scores[other] = value
                    reason_of[other] = kind + " together with "
        if "content" in kinds and record.get("category"):
            content_query = Query(user_id=None, now=now, category=record["category"])
            content_state = await self.cache.fetch(
                self.redis, trending.candidate_reads(content_query)
            )
            proposal = trending.propose(content_query, content_state, catalog)
            if proposal is not None:
                for other, value in zip(
                    proposal.codes.tolist(), proposal.scores.tolist(), strict=True
                ):
                    if other != own and other not in scores:
                        scores[other] = 0.5 * value
                        reason_of[other] = "also in " + record["category"]
        if not record and not scores:
            return None
        names = catalog.items.names
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], names[kv[0]]))[: n + 20]
        await self.cache.fetch(self.redis, [item_record_read(names[c]) for c, _ in ranked])
        title = record.get("title") or item_id
        items = []
        for other, score in ranked:
            if not catalog.in_stock[other]:
                continue
            reason = reason_of[other]
            if reason.endswith("together with "):
                reason += title
            items.append({"item_id": names[other], "score": round(score, 6), "reason": reason})
            if len(items) == n:
                break
        return items
