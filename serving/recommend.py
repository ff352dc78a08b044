"""Serve recommendations from the hybrid in a fixed number of pipelined round trips:

1. the user's state blob and MF vector (one MGET: both carry the user's hash tag);
2. every model's candidate reads (neighbour lists, trending scopes, new arrivals…);
3. every model's item reads for the bounded candidate pool, plus the catalog records of
   candidates and of the items reasons refer to.

The number of round trips never depends on catalog size or history length; 2 and 3 only
go to Redis for the shared reads the per-process cache (serving/cache.py) does not hold.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import astuple, dataclass, field
from operator import attrgetter
from typing import Any, Literal

from currents import keys
from currents.redis_client import AsyncRedis
from currents.redis_reads import fetch_reads
from currents.settings import Settings
from online_models.base import (
    DerivedMemo,
    MemoState,
    Query,
    Read,
    Scored,
    get,
    hgetall,
    item_record_read,
)
from online_models.content import ContentModel
from online_models.cooccurrence import KINDS
from online_models.hybrid import Hybrid, Ranked, build_models
from profiles.consent import personalization_allowed
from profiles.query import query_from_state
from schemas.profile import UserState
from serving.business_rules import Candidate, Rule, apply_rules, chosen_before_pins
from serving.cache import ColdStartCache, ReadCache
from serving.config_store import ConfigStore, recommendation_record
from serving.experiments import Experiment, Variant, assign
from serving.served_records import ServedRecords

POOL = 300
RECORD_TTL_S = 7 * 86_400
Exclude = Literal["purchased", "viewed", "none"]


@dataclass
class Filters:
    exclude: Exclude = "purchased"
    category: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    diversity: int | None = None  # max items per category


@dataclass
class Recommendation:
    recommendation_id: str
    user_id: str
    personalized: bool
    items: list[dict[str, Any]] = field(default_factory=list)


def _record(state: Mapping[Read, Any], item: str) -> dict[str, str]:
    return state.get(item_record_read(item)) or {}


def _price(record: Mapping[str, str]) -> float | None:
    try:
        return float(record["price"])
    except (KeyError, ValueError):
        return None


def passes(record: Mapping[str, str], filters: Filters) -> bool:
    """Stock and request filters on an item's catalog record (unknown items pass stock)."""
    if record.get("in_stock") == "0":
        return False
    if filters.category is not None and record.get("category") != filters.category:
        return False
    price = _price(record)
    if filters.min_price is not None and (price is None or price < filters.min_price):
        return False
    return not (filters.max_price is not None and (price is None or price > filters.max_price))


HEAD_FACTOR, HEAD_SLACK = 3, 30
_score_of = attrgetter("score")


@dataclass
class Scoring:
    """A request's scored pool: rank all of it, or only its head (``limit``)."""

    hybrid: Hybrid
    query: Query
    proposals: dict[str, dict[str, Scored]]
    item_state: dict[Read, Any]

    def rank(self, limit: int | None) -> list[Ranked]:
        return self.hybrid.rank(
            self.query, self.proposals, self.item_state, _ContentReasons(self), limit
        )


class _ContentReasons(Mapping[str, str]):
    """The content model's reason per pooled item, worked out only for items that need it
    (an item whose best contribution is content's), not for the whole pool."""

    def __init__(self, scoring: Scoring) -> None:
        self.scoring = scoring

    def __getitem__(self, item: str) -> str:
        if item not in self.scoring.proposals:
            raise KeyError(item)
        reason = ContentModel.reason(self.scoring.query, _record(self.scoring.item_state, item))
        if reason is None:
            raise KeyError(item)
        return reason

    def __iter__(self) -> Iterator[str]:
        return (item for item in self.scoring.proposals if item in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:  # not len(): that would work out every reason
        return True


def select(
    rank: Callable[[int | None], list[Ranked]],
    record_of: Callable[[str], Mapping[str, str]],
    reason_of: Callable[[Ranked], str],
    filters: Filters,
    rules: list[Rule],
    n: int,
    pinned_records: Mapping[str, Mapping[str, str]],
) -> tuple[list[Ranked], list[Candidate]]:
    """The ranked items passing the filters, and the response's items after the rules.

    Only the head of the ranking can reach the response, so only the head is explained
    and filtered, unless a rule may lift an item from deep down (boost, promote) or the
    head runs dry: then the whole pool is. Either way the response is the same."""
    reorders = any(r.active and r.kind in {"boost", "promote"} for r in rules)
    head: int | None = None if reorders else HEAD_FACTOR * n + HEAD_SLACK
    while True:
        ranked = rank(head)
        kept = [r for r in ranked if passes(record_of(r.item_id), filters)]
        candidates = [
            Candidate(r.item_id, r.score, reason_of(r), record_of(r.item_id)) for r in kept
        ]
        final = apply_rules(candidates, rules, n, pinned_records, filters.diversity)
        if head is None or _head_suffices(candidates, ranked, head, n, rules, filters.diversity):
            return kept, final
        head = None


def _head_suffices(
    candidates: list[Candidate],
    ranked: list[Ranked],
    head: int,
    n: int,
    rules: list[Rule],
    diversity: int | None,
) -> bool:
    """Whether the response built from the ranking's first ``head`` items is the one the
    whole ranking gives (no boost or promote rule being active). It is when the ranking
    had no more items, or when ``n`` items were chosen and the lowest of them scores
    strictly above the head's last item: everything past the head scores no higher, so it
    sorts after every chosen item and the diversity cap stops before reaching it."""
    if len(ranked) < head:
        return True
    chosen = chosen_before_pins(candidates, rules, n, diversity)
    return len(chosen) == n and min(c.score for c in chosen) > ranked[-1].score


class Recommender:
    def __init__(self, redis: AsyncRedis, settings: Settings, config: ConfigStore) -> None:
        self.redis = redis
        self.config = config
        self.hybrid = Hybrid(build_models(settings), settings.blend)
        self.cache = ReadCache()  # shared model reads, per process (serving/cache.py)
        self.cold_start = ColdStartCache()
        # What models derive from the cached shared replies (merged and normalised
        # neighbour lists, trending scopes), worked out once per reply, not per request.
        self.derived = DerivedMemo()
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
        hybrid = self.hybrid if blend is None else self.hybrid.with_blend(blend)
        excluded: set[str] = set()
        if filters.exclude in {"purchased", "viewed"}:
            excluded |= query.purchased
        if filters.exclude == "viewed":
            excluded |= set(state.recent_item_ids())
        if context_item:
            excluded.add(context_item)
        rules = self.config.rules
        pinned = sorted({r.item_id for r in rules if r.kind == "pin" and r.item_id and r.active})
        scoring = await self._score(hybrid, query, user_reads, excluded, pinned)
        pinned_records = {
            item: record
            for item in pinned
            if item not in excluded
            and (record := _record(scoring.item_state, item))
            and passes(record, filters)
        }
        kept, final = select(
            scoring.rank,
            lambda item: _record(scoring.item_state, item),
            lambda ranked: self._reason(ranked, scoring.item_state),
            filters,
            rules,
            n,
            pinned_records,
        )
        by_id = {r.item_id: r for r in kept}
        items = [
            {"item_id": c.item_id, "score": round(c.score, 6), "reason": c.reason} for c in final
        ]
        return items, any(by_id[c.item_id].personalized for c in final if c.item_id in by_id)

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
        hybrid: Hybrid,
        query: Query,
        user_reads: Mapping[Read, Any],
        excluded: set[str],
        extra_items: list[str],
    ) -> Scoring:
        candidate_state = await self.cache.fetch(self.redis, hybrid.candidate_reads(query))
        proposals = hybrid.propose(query, MemoState(candidate_state, self.derived))
        pool = [item for item in proposals if item not in excluded]
        pool.sort(key=lambda item: -max(map(_score_of, proposals[item].values())))
        pool = pool[:POOL]
        proposals = {item: proposals[item] for item in pool}
        sources = {s.source for scored in proposals.values() for s in scored.values() if s.source}
        reads = hybrid.item_reads(query, pool)
        reads += map(item_record_read, [*pool, *sorted(sources), *extra_items])
        item_state = {**candidate_state, **await self.cache.fetch(self.redis, reads, user_reads)}
        return Scoring(hybrid, query, proposals, item_state)

    @staticmethod
    def _reason(candidate: Ranked, state: Mapping[Read, Any]) -> str:
        if candidate.source is None:
            return candidate.reason
        name = _record(state, candidate.source).get("title") or candidate.source
        return candidate.reason.format(item=name)

    async def similar(
        self, item_id: str, n: int, now: int, kinds: tuple[str, ...] = KINDS
    ) -> list[dict[str, Any]] | None:
        """Neighbours of ``item_id`` (co-occurrence kinds or ``content``); None if unknown."""
        cooccurrence = self.hybrid.models["cooccurrence"]
        reads: list[Read] = [hgetall(keys.item_record(item_id))]
        for kind in kinds:
            if kind in KINDS:
                reads += list(cooccurrence.neighbour_reads(item_id, kind, now))  # type: ignore[attr-defined]
        state = await fetch_reads(self.redis, reads)
        record = _record(state, item_id)
        scores: dict[str, float] = {}
        reason_of: dict[str, str] = {}
        for kind in kinds:
            if kind not in KINDS:
                continue
            neighbours = cooccurrence.neighbours_of(item_id, kind, now, state)  # type: ignore[attr-defined]
            top = max(neighbours.values(), default=0.0)
            for other, value in neighbours.items():
                if other != item_id and value > 0 and value / top > scores.get(other, 0.0):
                    scores[other] = value / top
                    reason_of[other] = f"{kind} together with {{item}}"
        if "content" in kinds and record.get("category"):
            trending = self.hybrid.models["trending"]
            content_query = Query(user_id=None, now=now, category=record["category"])
            content_state = await fetch_reads(self.redis, trending.candidate_reads(content_query))
            for other, scored in trending.candidates(content_query, content_state).items():
                if other != item_id and other not in scores:
                    scores[other] = 0.5 * scored.score
                    reason_of[other] = f"also in {record['category']}"
        if not record and not scores:
            return None
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[: n + 20]
        records = await fetch_reads(self.redis, [hgetall(keys.item_record(i)) for i, _ in ranked])
        title = record.get("title") or item_id
        items = []
        for other, score in ranked:
            if _record(records, other).get("in_stock") == "0":
                continue
            reason = reason_of[other].format(item=title)
            if reason.startswith("bought"):
                reason = "bought together with " + title
            elif reason.startswith("viewed"):
                reason = "viewed together with " + title
            items.append({"item_id": other, "score": round(score, 6), "reason": reason})
            if len(items) == n:
                break
        return items
