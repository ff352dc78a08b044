"""Slates: the worker ranks each shopper whose state changed and writes the top
``slate_size`` items under the shopper's hash tag; the API only reads them.

:class:`SlateBuilder` is the logic: plans (who, for which variant), the reads each stage
needs, the rankings (``online_models/ranking.py``, the one pipeline) and the writes. It
never does I/O. :class:`SlateRefresher` drives it: it keeps the set of shoppers whose
slates are out of date, ranks them in chunks (three pipelined round trips per chunk, no
matter its size), and lands each chunk's writes in one script call.

Slates take the worker's idle time, and ``slate_share`` of the CPU time everything else
takes; while ingest is behind (its newest record was produced a while ago), only that
share, so ingest keeps the rest. A shopper marked again before their turn is ranked once:
under a backlog a slate reflects several batches at once instead of slowing every one of
them down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np
from redis.exceptions import RedisError

from currents import keys
from currents.redis_client import AsyncRedis
from currents.redis_reads import fetch_reads
from currents.settings import Settings
from currents.slate import Slate, encode_slate
from currents.text import as_text
from currents.writes import Delete, GuardedPut, HashIncr, Put, Write
from online_models.arrays import Codes
from online_models.base import Query, Read, get
from online_models.ranking import Pool, Ranker, build_models, catalog_for
from profiles.consent import personalization_allowed
from profiles.query import query_from_state
from schemas.profile import UserState
from serving.cache import ReadCache
from serving.experiments import Experiment, Variant, assign

log = logging.getLogger("currents.worker.slates")

# Shoppers ranked per chunk: small enough that a chunk never holds ingest up for long
# (about 2 ms of work each), large enough to share the round trips.
CHUNK = 8
# Shared reads (neighbour lists, trending, item rows) are cached this long in the worker:
# they move with everyone's events, and a slate may lag those by ``slate_max_age_s``
# anyway. Not longer: right after a start the lists are empty, and strangers' shared
# slates would stay empty for as long (30 s did, in the demo storefront).
SHARED_READS_TTL_S = 5.0
SHARED_EVERY_S = 2.0
SHARED_SCOPES_PER_PASS = 16
# How often the shoppers the API asked for are collected: a browsing shopper whose slate
# misses their newest event waits this long at most before going first.
REFRESH_POLL_S = 0.05
REFRESH_POP = 1000
MAX_CREDIT_S = 0.5
# Shared slates outlive a stopped worker by this long before strangers get nothing.
SHARED_TTL_S = 3600


@dataclass
class Plan:
    """One slate to build: whose (None for a shared one), where it goes, how it ranks."""

    key: str
    query: Query
    ranker: Ranker
    variant: str | None
    as_of_event: str | None = None
    as_of_ms: int | None = None
    guard: str | None = None
    pool: Pool | None = None


def shared_scope_queries(
    now: int, categories: Iterable[str], segments: Iterable[str]
) -> list[tuple[str, Query]]:
    """The shared slates' scopes: global, per category, per segment."""
    scopes = [("global", Query(None, now))]
    scopes += [("c:" + c, Query(None, now, category=c)) for c in categories]
    scopes += [("s:" + s, Query(None, now, segments=(s,))) for s in segments]
    return scopes


class SlateBuilder:
    def __init__(self, settings: Settings) -> None:
        models = build_models(settings)
        self.catalog = catalog_for(models)
        self.ranker = Ranker(models, settings.blend)
        self.size = settings.slate_size
        self.ttl_s = settings.slate_ttl_s
        self._variants: dict[tuple[tuple[str, float], ...], Ranker] = {}

    def ranker_for(self, variant: Variant | None) -> Ranker:
        if variant is None or variant.blend is None:
            return self.ranker
        blend = tuple(sorted(variant.blend.items()))
        ranker = self._variants.get(blend)
        if ranker is None:
            ranker = self._variants[blend] = self.ranker.with_blend(dict(blend))
        return ranker

    # --- plans -----------------------------------------------------------------------------
    def plan(
        self, user_id: str, state: UserState, now: int, experiment: Experiment | None
    ) -> Plan | None:
        """The shopper's slate plan; None when nothing personal may be ranked (no state,
        or personalisation withdrawn): then the slate is deleted (:meth:`writes`)."""
        if not state.exists or not personalization_allowed(state):
            return None
        variant = assign(experiment, user_id) if experiment else None
        return Plan(
            keys.user_slate(user_id),
            query_from_state(user_id, state, now),
            self.ranker_for(variant),
            variant.name if variant else None,
            as_of_event=state.seen_ids[-1] if state.seen_ids else None,
            as_of_ms=state.last_seen,
            guard=keys.user_profile(user_id),
        )

    def shared_plans(
        self, now: int, scopes: Sequence[tuple[str, Query]], experiment: Experiment | None
    ) -> list[Plan]:
        variants: list[Variant | None] = list(experiment.variants) if experiment else [None]
        return [
            Plan(
                keys.shared_slate(scope, variant.name if variant else None),
                query,
                self.ranker_for(variant),
                variant.name if variant else None,
            )
            for scope, query in scopes
            for variant in variants
        ]

    # --- stages ----------------------------------------------------------------------------
    def candidate_reads(self, plans: Sequence[Plan]) -> list[Read]:
        return list(dict.fromkeys(r for p in plans for r in p.ranker.candidate_reads(p.query)))

    def pool(self, plans: Sequence[Plan], state: dict[Read, Any]) -> None:
        for plan in plans:
            plan.pool = plan.ranker.pool(plan.query, state, self.catalog, plan.query.purchased)

    def user_reads(self, plans: Sequence[Plan]) -> list[Read]:
        return list(dict.fromkeys(r for p in plans for r in p.ranker.user_reads(p.query)))

    def pooled(self, plans: Sequence[Plan]) -> tuple[Codes, frozenset[str]]:
        """Every pooled item, and the catalog rows their rankings read."""
        pools = [plan.pool.codes for plan in plans if plan.pool is not None]
        rows = frozenset().union(*(plan.ranker.item_rows for plan in plans))
        return (np.concatenate(pools) if pools else np.zeros(0, np.int64)), rows

    def slate(self, plan: Plan, state: dict[Read, Any], now: int) -> Slate:
        assert plan.pool is not None
        ranked = plan.ranker.rank(plan.query, plan.pool, state, self.catalog, self.size)
        return Slate(
            items=ranked.items,
            scores=ranked.scores,
            models=ranked.models,
            reasons=ranked.reasons,
            sources=ranked.sources,
            personal=ranked.personal,
            built_ms=now,
            as_of_event=plan.as_of_event,
            as_of_ms=plan.as_of_ms,
            variant=plan.variant,
            truncated=ranked.truncated,
        )

    def writes(
        self, plans: Sequence[Plan], state: dict[Read, Any], now: int, gone: Iterable[str] = ()
    ) -> list[Write]:
        """Each plan's slate, and a delete for each of ``gone`` (shoppers whose slates may
        no longer be personal). A shopper's slate lands only while their profile exists,
        so a slate ranked while they were erased never outlives the erasure."""
        writes: list[Write] = [Delete(keys.user_slate(user)) for user in gone]
        for plan in plans:
            value = encode_slate(self.slate(plan, state, now))
            if plan.guard is None:
                writes.append(Put(plan.key, value, SHARED_TTL_S))
            else:
                writes.append(GuardedPut(plan.key, value, self.ttl_s, plan.guard))
        return writes


Apply = Callable[[Sequence[Write]], Any]


class SlateRefresher:
    """Keeps slates up to date for the shoppers this worker owns."""

    def __init__(
        self,
        redis: AsyncRedis,
        builder: SlateBuilder,
        apply: Apply,
        *,
        settings: Settings,
        experiment: Callable[[], Experiment | None] = lambda: None,
        backlogged: Callable[[], bool] = lambda: False,
        owned_partitions: Callable[[], set[int]] = set,
        compute: Executor | None = None,
        clock: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.redis = redis
        self.builder = builder
        self.apply = apply
        self.share = settings.slate_share
        self.experiment = experiment
        self.backlogged = backlogged
        self.owned_partitions = owned_partitions
        self.compute = compute
        self.clock = clock
        self.cache = ReadCache(builder.catalog, ttl_s=SHARED_READS_TTL_S)
        # Shoppers waiting for a slate, first marked first (dicts as ordered sets); the
        # ones the API asked for go before the rest.
        self.dirty: dict[str, None] = {}
        self.requested: dict[str, None] = {}
        self.wake = asyncio.Event()
        self._shared_at = 0.0
        self._scope_turn = 0
        # Seconds of work slates may still do now (see :meth:`_earn`).
        self._credit = 0.0
        self._checked = (time.perf_counter(), time.process_time(), 0.0)  # wall, CPU, slates
        self._spent = 0.0

    def mark(self, users: Iterable[str], *, requested: bool = False) -> None:
        """Queue ``users`` for a slate; ``requested`` ones (the API served them a slate
        that was behind or old: they are browsing now) go before the rest."""
        queue = self.requested if requested else self.dirty
        for user in users:
            queue.setdefault(user, None)
        if self.dirty or self.requested:
            self.wake.set()

    def take(self, n: int = CHUNK) -> list[str]:
        taken: list[str] = []
        for queue in (self.requested, self.dirty):
            for user in queue:
                if len(taken) == n:
                    break
                taken.append(user)
        for user in taken:
            self.requested.pop(user, None)
            self.dirty.pop(user, None)
        return taken

    async def _run_compute(self, work: Callable[[], Any]) -> Any:
        if self.compute is None:
            return work()
        return await asyncio.get_running_loop().run_in_executor(self.compute, work)

    # --- one chunk ---------------------------------------------------------------------------
    async def refresh(self, users: Sequence[str]) -> int:
        """Rank ``users`` and write their slates (or delete them); returns slates built."""
        if not users:
            return 0
        builder = self.builder
        now = self.clock()
        experiment = self.experiment()
        profiles = await fetch_reads(self.redis, [get(keys.user_profile(u)) for u in users])
        plans: list[Plan] = []
        gone: list[str] = []
        for user in users:
            state = UserState.from_bytes(profiles[get(keys.user_profile(user))])
            plan = builder.plan(user, state, now, experiment)
            if plan is None:
                gone.append(user)
            else:
                plans.append(plan)
        writes = await self._build(plans, now, gone)
        if plans:
            writes.append(HashIncr(keys.counters(), "slates", len(plans)))
        await self.apply(writes)
        return len(plans)

    async def _build(self, plans: list[Plan], now: int, gone: Iterable[str] = ()) -> list[Write]:
        builder = self.builder
        cache = self.cache
        state = await cache.fetch(self.redis, builder.candidate_reads(plans))
        await self._run_compute(lambda: builder.pool(plans, state))
        pooled, rows = builder.pooled(plans)
        reads = builder.user_reads(plans) + cache.row_reads(pooled, rows)
        state.update(await cache.fetch(self.redis, reads))
        return await self._run_compute(lambda: builder.writes(plans, state, now, gone))

    async def refresh_shared(self, force: bool = False) -> int:
        """Global, category and segment slates, by the owner of partition 0 (one writer
        for them), every ``SHARED_EVERY_S``; at most ``SHARED_SCOPES_PER_PASS`` category
        and segment scopes per pass, in turn."""
        wall = time.monotonic()
        due = wall - self._shared_at >= SHARED_EVERY_S and 0 in self.owned_partitions()
        if not (force or due):
            return 0
        self._shared_at = wall
        now = self.clock()
        categories = sorted(self.builder.catalog.categories.names)
        segments = sorted(
            as_text(name) for name in await self.redis.hkeys(keys.segment_definitions())
        )
        scoped = [*(("c", c) for c in categories), *(("s", s) for s in segments)]
        turn = []
        if scoped:
            start = self._scope_turn % len(scoped)
            turn = (scoped[start:] + scoped[:start])[:SHARED_SCOPES_PER_PASS]
            self._scope_turn = start + len(turn)
        scopes = shared_scope_queries(
            now, [c for kind, c in turn if kind == "c"], [s for kind, s in turn if kind == "s"]
        )
        plans = self.builder.shared_plans(now, scopes, self.experiment())
        await self.apply(await self._build(plans, now))
        return len(plans)

    async def _requested(self) -> None:
        """Shoppers whose slate the API found older than ``slate_max_age_s``."""
        owned = sorted(self.owned_partitions())
        if not owned:
            return
        pipe = self.redis.pipeline(transaction=False)
        for partition in owned:
            pipe.spop(keys.slate_refresh(partition), REFRESH_POP)
        for popped in await pipe.execute():
            self.mark((as_text(user) for user in popped or ()), requested=True)

    # --- the loop ----------------------------------------------------------------------------
    def _earn(self) -> float:
        """Credit earned since the last look: the time this process sat idle (unless
        batches are queued), and ``share`` of the CPU time everything else in it took
        (capped at ``MAX_CREDIT_S``). Under a backlog slates get their share and no
        more; otherwise they take what ingest leaves."""
        wall, cpu, spent = time.perf_counter(), time.process_time(), self._spent
        last_wall, last_cpu, last_spent = self._checked
        self._checked = (wall, cpu, spent)
        used = cpu - last_cpu
        # Waiting on Redis or the broker leaves this process idle; with batches queued
        # that wait is ingest's, not time to spend on slates.
        idle = 0.0 if self.backlogged() else max(0.0, (wall - last_wall) - used)
        others = max(0.0, used - (spent - last_spent))
        self._credit = min(MAX_CREDIT_S, self._credit + idle + self.share * others)
        return self._credit

    def _wait_s(self) -> float:
        """How long until slates have earned some credit (0: now)."""
        credit = self._earn()
        return 0.0 if credit > 0 else min(0.05, -credit / self.share + 0.001)

    async def run(self) -> None:
        polled = 0.0
        while True:
            try:
                if time.monotonic() - polled > REFRESH_POLL_S:
                    polled = time.monotonic()
                    await self._requested()
                    await self._timed(self.refresh_shared())
                if not (self.dirty or self.requested):
                    self.wake.clear()
                    try:
                        await asyncio.wait_for(self.wake.wait(), REFRESH_POLL_S)
                    except TimeoutError:
                        continue
                if (wait := self._wait_s()) > 0:
                    await asyncio.sleep(wait)
                    continue
                users = self.take()
                try:
                    await self._timed(self.refresh(users))
                except (RedisError, OSError) as error:
                    self.mark(users)  # their turn comes again
                    log.warning("slates not written", extra={"error": type(error).__name__})
                    await asyncio.sleep(1.0)
                    continue
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("slate refresh failed")
                await asyncio.sleep(1.0)

    async def _timed(self, work: Awaitable[int]) -> int:
        started = time.perf_counter()
        try:
            return await work
        finally:
            spent = time.perf_counter() - started
            self._spent += spent
            self._credit -= spent
