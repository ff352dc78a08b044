"""Serve recommendations from the slates the worker materialises (streams/slates.py).

A request reads the shopper's slate and profile in one MGET (both under the shopper's
hash tag), then filters in process: stock, price and category from the catalog records
this process keeps (following the worker's change announcements), ``exclude`` from the
profile just read, then the business rules. Strangers and opted-out shoppers get the
shared slate of their variant, cached per process.

Only what a slate cannot answer is ranked on the spot, through the same pipeline
(``online_models/ranking.py``), and counted by reason in ``currents_recommendations_total``:
a shopper without a slate yet, a slate of another variant, a context item, a blend
override, ``exclude=none``, a boost or promote rule with a truncated slate, or filters
that leave the slate short of ``n``. A slate read older than ``slate_max_age_s`` is served
and its shopper queued for the owning worker to rank again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import astuple, dataclass, field
from typing import Any

import numpy as np
from redis.exceptions import RedisError

from currents import keys
from currents.partitioning import partition_for
from currents.redis_client import AsyncRedis
from currents.redis_lean import LeanConnection, RedisPyCommands
from currents.settings import Settings
from currents.slate import SlateRead, read_slate
from online_models.arrays import Catalog, CatalogRecords, Scores
from online_models.base import RECORD, Query, Read, hgetall, row_reads
from online_models.cooccurrence import KINDS
from online_models.ranking import Pool, Ranked, Ranker, build_models, catalog_for
from online_models.selection import Exclude, Filters, NeedsRanking, serve, slate_ranking
from profiles.consent import personalization_allowed
from profiles.query import query_from_state
from schemas.profile import ProfileHead, UserState, profile_head
from serving.cache import ColdStartCache, ReadCache
from serving.config_store import ConfigStore, recommendation_record
from serving.experiments import Experiment, Variant, assign
from serving.served_records import ServedRecords

log = logging.getLogger("currents.api.recommend")
RECORD_TTL_S = 7 * 86_400
# Shared slates change every couple of seconds (streams/slates.py SHARED_EVERY_S).
SHARED_SLATE_TTL_S = 1.0
FRESH_ATTEMPTS = 3
__all__ = ["Exclude", "Filters", "Recommendation", "Recommender"]


@dataclass
class Recommendation:
    recommendation_id: str
    user_id: str
    personalized: bool
    items: list[dict[str, Any]] = field(default_factory=list)
    # The newest event of the shopper the answer reflects, and how old the slate was.
    as_of: dict[str, Any] | None = None
    slate_age_ms: int | None = None
    source: str = "slate"


class Lazy:
    """The shopper's whole state, decoded from the profile blob on first use (an empty
    state when there is none, or when nothing personal may be used)."""

    def __init__(self, blob: bytes | None) -> None:
        self.blob = blob
        self._state: UserState | None = None

    def get(self) -> UserState:
        if self._state is None:
            self._state = UserState.from_bytes(self.blob)
        return self._state


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


class SharedSlates:
    """Shared slates (global, per category, per segment) per process, for ``ttl_s``."""

    def __init__(self, redis: AsyncRedis, ttl_s: float = SHARED_SLATE_TTL_S) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, SlateRead | None]] = {}

    async def get(self, scope: str, variant: str | None) -> SlateRead | None:
        key = keys.shared_slate(scope, variant)
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        raw: bytes | None = await self.redis.get(key)  # type: ignore[assignment]
        slate = _decoded(raw)
        self._entries[key] = (now + self.ttl_s, slate)
        return slate


def _decoded(raw: bytes | None) -> SlateRead | None:
    if not raw:
        return None
    try:
        return read_slate(raw)
    except ValueError:  # written by another version: rank on the spot until rewritten
        return None


class Recommender:
    def __init__(
        self,
        redis: AsyncRedis,
        settings: Settings,
        config: ConfigStore,
        count: Callable[[str, str, int | None], None] = lambda source, reason, age: None,
        commands: LeanConnection | RedisPyCommands | None = None,
    ) -> None:
        self.redis = redis
        # The request's one read (slate and profile) and its best-effort writes (served
        # records, refresh requests): a lean connection where there is one
        # (currents/redis_lean.py), else ``redis``.
        self.commands = commands or RedisPyCommands(redis)
        self.config = config
        self.settings = settings
        self.count = count
        models = build_models(settings)
        self.ranker = Ranker(models, settings.blend)
        self.catalog = catalog_for(models)
        # Shared model reads, per process and decoded (serving/cache.py).
        self.cache = ReadCache(self.catalog)
        self.cold_start = ColdStartCache()
        self.shared = SharedSlates(redis)
        self.served = ServedRecords(self.commands.batch, RECORD_TTL_S)
        self.max_age_ms = int(settings.slate_max_age_s * 1000)
        self.max_behind_ms = settings.slate_max_behind_ms
        self.catch_up_per_s = settings.slate_catch_up_per_s
        self._catch_up_tokens = self.catch_up_per_s
        self._catch_up_at = time.monotonic()
        self._refreshes: list[tuple[int, str]] = []
        self._refresher: asyncio.Task[None] | None = None

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
        """The shopper's recommendations: from their slate when it can answer, else
        ranked on the spot."""
        filters = filters or Filters()
        raw, blob = await self.commands.mget([keys.user_slate(user_id), keys.user_profile(user_id)])
        # The profile's head answers whether and how fresh; the whole state is decoded
        # only when the answer needs it (exclusions the slate does not hold, a ranking).
        head = profile_head(blob)
        personal = head.exists and personalization_allowed(head)
        state = Lazy(blob if personal else None)
        experiment = self.config.active_experiment()
        variant = assign(experiment, user_id) if experiment else None
        variant_name = variant.name if variant else None
        if blend is None and variant is not None and variant.blend is not None:
            blend = variant.blend
        slate: SlateRead | None = None
        source = "slate"
        reason = ""
        behind = False
        if context_item is not None:
            reason = "context item"
        elif blend is not None and (variant is None or blend is not variant.blend):
            reason = "blend override"
        elif filters.exclude == "none" and personal:
            reason = "exclude none"
        elif not personal:
            scope = "global" if filters.category is None else "c:" + filters.category
            slate, source = await self.shared.get(scope, variant_name), "shared"
            reason = "no shared slate"
        else:
            slate = _decoded(raw)
            reason = "no slate"
            if slate is not None and slate.variant != variant_name:
                slate, reason = None, "other variant"
            # Missing the newest event: the worker has it queued, but the shopper is
            # browsing now, so it ranks them before shoppers nobody asked for.
            missing = slate is not None and head.newest not in (None, slate.as_of_event)
            behind = missing and self._behind(head, now)
            if behind and self._catch_up():
                slate, reason = None, "behind"
            if missing or slate is None or now - slate.built_ms > self.max_age_ms:
                self._request_refresh(user_id, head.partition)
        answer = None
        if slate is not None:
            try:
                answer = await self._from_slate(slate, head, state, n, filters)
            except NeedsRanking as needs:
                reason = needs.reason
        age_ms = None if slate is None else max(0, now - slate.built_ms)
        if answer is None:
            source, age_ms = "ranked", None
            answer = await self._ranked(
                user_id, state.get(), n, filters, context_item, blend, variant
            )
            self.count(source, reason, None)
        else:
            # A slate served although behind (the catch-up budget was spent) says so.
            self.count(source, "behind" if behind else "", age_ms)
        items, personalized = answer
        recommendation_id = os.urandom(16).hex()  # as random as uuid4, a tenth of its cost
        served = [item["item_id"] for item in items]
        self._remember(recommendation_id, served, experiment, variant, now)
        fresh = slate if source == "slate" else None
        return Recommendation(
            recommendation_id=recommendation_id,
            user_id=user_id,
            personalized=personalized,
            items=[dict(item) for item in items],
            as_of=(
                {"event": head.newest, "at": head.last_seen}
                if fresh is None
                else {"event": fresh.as_of_event, "at": fresh.as_of_ms}
            )
            if personal
            else None,
            slate_age_ms=age_ms,
            source=source,
        )

    def _behind(self, head: ProfileHead, now: int) -> bool:
        """A slate that misses the shopper's newest event has missed it for longer than
        ``slate_max_behind_ms`` (the worker is about to rank it; until then a few
        requests may see the list from just before)."""
        return now - (head.applied_at or now) > self.max_behind_ms

    def _catch_up(self) -> bool:
        """Whether this process may rank a behind shopper on the spot now: at most
        ``slate_catch_up_per_s``, so a worker that falls behind makes answers a little
        staler (each says how fresh it is) instead of turning every request into a
        ranking and the API into the bottleneck."""
        wall = time.monotonic()
        rate = self.catch_up_per_s
        self._catch_up_tokens = min(rate, self._catch_up_tokens + (wall - self._catch_up_at) * rate)
        self._catch_up_at = wall
        if self._catch_up_tokens < 1:
            return False
        self._catch_up_tokens -= 1
        return True

    def _excluded(self, state: UserState, filters: Filters) -> set[str]:
        """What ``exclude`` removes from a personal answer, from the profile just read."""
        excluded: set[str] = set()
        if filters.exclude in {"purchased", "viewed"}:
            excluded |= state.purchased_item_ids()
        if filters.exclude == "viewed":
            excluded |= set(state.recent_item_ids())
        return excluded

    def _pinned(self) -> list[str]:
        return sorted(
            {r.item_id for r in self.config.rules if r.kind == "pin" and r.item_id and r.active}
        )

    async def _from_slate(
        self, slate: SlateRead, head: ProfileHead, state: Lazy, n: int, filters: Filters
    ) -> tuple[list[dict[str, Any]], bool]:
        """Filters and rules over the slate; ``NeedsRanking`` when it falls short."""
        excluded: set[str] = set()
        # A slate is ranked without the shopper's purchases as of its event: only a newer
        # state (or excluding what they viewed) excludes more.
        if filters.exclude == "viewed" or head.newest != slate.as_of_event:
            excluded = self._excluded(state.get(), filters)
        pinned = self._pinned()
        catalog = self.catalog
        ranking = slate_ranking(slate, lambda items: catalog.codes(items).tolist())
        for attempt in range(FRESH_ATTEMPTS):
            # Served from the records this process holds; the ones it touched that were
            # not fresh are fetched (one round trip) and the answer worked out again. A
            # record rewritten while being fetched stays stale: after a few rounds the
            # answer stands on what was read.
            records = self.cache.records()
            last = attempt == FRESH_ATTEMPTS - 1
            try:
                answer = serve(
                    ranking,
                    records,
                    excluded,
                    pinned,
                    n,
                    filters,
                    self.config.rules,
                )
            except NeedsRanking:
                if last or not records.stale:
                    raise
            if last or not records.stale:
                break
            await self.cache.fetch(self.redis, row_reads(records.stale, (RECORD,)))
        return answer

    async def _ranked(
        self,
        user_id: str,
        state: UserState,
        n: int,
        filters: Filters,
        context_item: str | None,
        blend: Mapping[str, float] | None,
        variant: Variant | None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Rank on the spot through the pipeline: exactly what the worker would have put
        in a slate, filtered and ruled as a slate is."""
        now = int(time.time() * 1000)
        cold_key = None
        if not state.exists:  # a stranger (or opted out): nothing of theirs is ranked
            cold_key = (
                n,
                astuple(filters),
                context_item,
                variant.name if variant else None,
                tuple(sorted(blend.items())) if blend else None,
                self.config.version,  # rules and experiments as loaded
            )
            answer = self.cold_start.lookup(cold_key)
            if answer is not None:
                return answer
        query = query_from_state(
            user_id if state.exists else None,
            state,
            now,
            context_item=context_item,
            category=filters.category,
        )
        ranker = self.ranker if blend is None else self.ranker.with_blend(blend)
        # The pool leaves out what a slate leaves out (purchases); the rest of
        # ``exclude`` filters the ranking, as it filters a slate.
        in_pool = set() if filters.exclude == "none" else set(query.purchased)
        if context_item:
            in_pool.add(context_item)
        pinned = self._pinned()
        scoring = await self._score(ranker, query, user_id, in_pool, pinned)
        answer = self._serve(scoring.rank, self._excluded(state, filters), pinned, n, filters)
        if cold_key:
            self.cold_start.store(cold_key, answer)
        return answer

    def _request_refresh(self, user_id: str, partition: int | None) -> None:
        """Queue the shopper for the worker owning their partition, without waiting."""
        if partition is None:
            partition = partition_for(user_id, self.settings.events_partitions)
        self._refreshes.append((partition, user_id))
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.ensure_future(self._send_refreshes())

    async def _send_refreshes(self) -> None:
        while self._refreshes:
            queued, self._refreshes = self._refreshes, []
            try:
                await self.commands.batch(
                    [("SADD", keys.slate_refresh(partition), user) for partition, user in queued]
                )
            except (RedisError, OSError) as error:
                log.warning("slate refresh not requested", extra={"error": type(error).__name__})

    def _remember(
        self,
        recommendation_id: str,
        items: list[str],
        experiment: Experiment | None,
        variant: Variant | None,
        now: int,
    ) -> None:
        """Store the served list for attribution without holding up the response."""
        record = recommendation_record(
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
        user_id: str,
        excluded: set[str],
        extra_items: list[str],
    ) -> Scoring:
        candidate_state = await self.cache.fetch(self.redis, ranker.candidate_reads(query))
        catalog = self.catalog
        pool = ranker.pool(query, candidate_state, catalog, excluded)
        # Reasons name the items they come from (the shopper's history and session), and
        # rules the items they pin: their titles are served too.
        named = [item for item, _ in query.history] + list(query.session_items) + extra_items
        if query.context_item:
            named.append(query.context_item)
        reads = ranker.user_reads(query)
        reads += self.cache.row_reads(pool.codes, ranker.item_rows)
        reads += self.cache.row_reads(catalog.codes(named), (RECORD,))
        state = {**candidate_state, **await self.cache.fetch(self.redis, reads)}
        return Scoring(ranker, query, pool, state, self.catalog)

    def _serve(
        self,
        rank: Callable[[int | None], Ranked],
        excluded: set[str],
        pinned: list[str],
        n: int,
        filters: Filters,
    ) -> tuple[list[dict[str, Any]], bool]:
        return serve(
            rank,
            CatalogRecords(self.catalog),
            excluded,
            pinned,
            n,
            filters,
            self.config.rules,
        )

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
        own = catalog.code(item_id)
        record = catalog.record(own)
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
        await self.cache.refresh_rows(
            self.redis, np.asarray([c for c, _ in ranked], np.int64), (RECORD,)
        )
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
