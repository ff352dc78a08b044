"""Batches of Kafka records through the engine, plus the clock-driven sweep and segment
backfills, all serialized by one lock so a user's state has one writer at a time.

For each batch: decode, read state, fold, send outbound messages (dead letters, segment
and tier changes), then apply the writes in one pipeline. Messages go out before the
writes land, so a crash in between repeats them (at least once, with stable event ids)
rather than losing them. Redis failures are retried with backoff until the batch lands;
nothing in the input can make this raise.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from redis.exceptions import RedisError

from currents import keys
from currents.redis_reads import fetch_reads
from currents.text import as_text
from currents.writes import HashIncr, HashSet, Put, Write, ZRemove, coalesce
from profiles.segments import SegmentDefinition, SegmentRegistry
from profiles.view import Tertiles
from schemas.profile import UserState
from streams.budget import LoopWatch, PartSizer, Stretches, event_cost
from streams.decode import DeadLetter, PositionedEvent, decode_record
from streams.processor import (
    BatchInput,
    BatchProcessor,
    BatchResult,
    Outbound,
    items_of,
    recommendation_ids_of,
    user_keys_of,
)
from streams.sink import RedisSink, parse_state
from streams.slates import SlateRefresher
from triggers.campaigns import Campaign
from triggers.engine import PRICE_DROP_LOOKBACK_MS, TriggerEngine
from triggers.recommend import PromotionItems
from triggers.reserve import Request, Reserver
from triggers.webhooks import WebhookDispatcher, dead_letter_value

log = logging.getLogger("currents.worker")
T = TypeVar("T")

Send = Callable[[Sequence[Outbound]], Awaitable[None]]
Owns = Callable[[str, UserState], bool]
SWEEP_PAGE = 500
# Records decoded per stretch: a packed record holds up to 500 events.
DECODE_CHUNK = 50
# A part's marker only has to outlive the retries of that part.
PART_MARKER_TTL_S = 3600
SWEEP_MAX_PER_TICK = 5000
BACKFILL_PAGE = 500


@dataclass(frozen=True, slots=True)
class RawRecord:
    value: bytes | None
    partition: int
    offset: int


@dataclass
class BatchStats:
    records: int
    applied: int
    duplicates: int
    dead_letters: int
    seconds: float


def now_ms() -> int:
    return int(time.time() * 1000)


class BatchHandler:
    def __init__(
        self,
        sink: RedisSink,
        processor: BatchProcessor,
        send: Send,
        *,
        dlq_topic: str,
        source_topic: str,
        progress_key: str | None = None,
        clock: Callable[[], int] = now_ms,
        max_backoff_s: float = 5.0,
        max_block_s: float = 0.2,
        batch_cost: int = 20_000,
        compute: Executor | None = None,
        max_script_s: float = 0.005,
    ) -> None:
        self.sink = sink
        self.processor = processor
        self.send = send
        self.dlq_topic = dlq_topic
        self.source_topic = source_topic
        self.progress_key = progress_key
        self.clock = clock
        self.max_backoff_s = max_backoff_s
        # Compute runs on ``compute`` (a thread; inline when None, as in tests). Parts are
        # sized so that neither a stretch of it nor what stays on the loop (parsing
        # replies) passes half the block budget.
        self.compute = compute
        self.sizer = PartSizer(batch_cost, start=min(batch_cost, 500))
        self.max_block_s = max_block_s
        self.max_script_s = max_script_s
        self.watch = LoopWatch(max_block_s)
        self.stopping = False
        self.lock = asyncio.Lock()
        self.tertiles: Tertiles = {}
        self.tertiles_checked = False
        self.segment_version: int | None = None
        self.campaign_version: int | None = None
        self.backfills: dict[str, asyncio.Task[None]] = {}
        self.reserver: Reserver | None = None
        self.items: PromotionItems | None = None
        self.webhooks: WebhookDispatcher | None = None
        # Told which shoppers changed once each part has landed (streams/slates.py).
        self.slates: SlateRefresher | None = None

    # --- batches -----------------------------------------------------------------------------
    async def handle(self, records: Sequence[RawRecord]) -> BatchStats:
        """Apply a batch of records, in parts whose cost the sizer bounds.

        1. Decode, off the event loop, ``DECODE_CHUNK`` records at a time, only as far as
           the next part needs: a batch of packed records can hold 250,000 events, and
           freeing them all at once would hold the loop for half a second.
        2. Cut the events into parts of at most ``sizer.limit`` cost (events plus order
           lines); a packed record of 500 heavy orders spans several parts.
        3. Apply each part under the lock (:meth:`_apply`), so the sweep and backfills get
           their turn between parts. Only the last part records the offsets: a crash in
           between replays the earlier parts, which dedup catches. Dead letters go with
           the first part applied after their record was decoded.
        """
        self.watch.start()
        started = time.perf_counter()
        last_offsets: dict[int, int] = {}
        for record in records:
            last_offsets[record.partition] = max(
                record.offset, last_offsets.get(record.partition, -1)
            )
        totals = Counter[str]()
        letters: list[DeadLetter] = []
        parts = self._parts(records, letters)
        part = await anext(parts, None)
        while part is not None:
            following = await anext(parts, None)
            offsets = last_offsets if following is None else None
            sending, letters[:] = list(letters), []
            async with self.lock:
                try:
                    results = [await self._apply(part, sending, offsets)]
                except (RedisError, OSError):
                    raise
                except Exception:
                    log.exception("batch failed; applying its events one by one")
                    results = await self._isolate(part, sending, offsets)
            for result in results:
                totals["applied"] += result.applied
                totals["duplicates"] += result.duplicates
                totals["dead_letters"] += len(result.dead_letters)
                totals["categories"] += bool(result.touched_categories)
            del results
            part = following
        if totals["categories"]:
            self.tertiles = await self._retrying(self.sink.read_tertiles)
        return BatchStats(
            len(records),
            totals["applied"],
            totals["duplicates"],
            totals["dead_letters"],
            time.perf_counter() - started,
        )

    async def _parts(
        self, records: Sequence[RawRecord], letters: list[DeadLetter]
    ) -> AsyncIterator[list[PositionedEvent]]:
        """The batch's parts, decoded as they are needed; dead letters of the decoded
        records are added to ``letters``. Always at least one part (it may be empty), so
        a batch of nothing but dead letters still sends them and records its offsets."""
        pending: deque[PositionedEvent] = deque()
        cost = 0
        yielded = False
        for begin in range(0, len(records), DECODE_CHUNK):
            decoded, rejected = await Stretches(self.compute).run(
                functools.partial(decode_records, records[begin : begin + DECODE_CHUNK]),
                "decode",
            )
            letters.extend(rejected)
            for positioned in decoded:
                pending.append(positioned)
                cost += event_cost(positioned)
            del decoded
            while pending and cost >= self.sizer.limit:
                part, cost = self.sizer.take(pending, cost)
                yielded = True
                yield part
        if pending or not yielded:
            yield list(pending)

    async def _apply(
        self,
        events: list[PositionedEvent],
        dead: list[DeadLetter],
        last_offsets: dict[int, int] | None = None,
    ) -> BatchResult:
        """One part: read, fold, settle, send, learn, write.

        Each network step retries on its own; compute is never repeated for a Redis
        error, and a write whose reply was lost is checked for (its marker) before it is
        sent again, so a retry never repeats work that already landed. Every stretch of
        compute is timed for the sizer.
        """
        stretches = Stretches(self.compute)
        user_keys = user_keys_of(events)
        item_ids = items_of(events)
        rec_ids = recommendation_ids_of(events)

        async def read() -> Any:
            # Independent reads: their round trips overlap.
            return await asyncio.gather(
                self.sink.fetch_state(user_keys, item_ids),
                self.sink.read_erasures(user_keys),
                self.sink.read_recommendations(rec_ids),
                self._read_prices(events),
            )

        fetched, erased, recommendations, prices = await self._retrying(read)
        users, catalog = await stretches.run(lambda: parse_state(fetched), "parse state")
        batch = BatchInput(
            events, users, catalog, self.clock(), self.tertiles, recommendations, erased
        )
        batch.prices = prices
        result = await stretches.run(lambda: self.processor.process(batch), "fold")
        await self._retrying(functools.partial(self._settle, result, users))
        result.dead_letters = dead + result.dead_letters
        letters = result.dead_letters
        outbound = [self._dead_letter(d) for d in letters] + result.outbound
        # Outbound messages are delivered while the models learn, but always before any
        # of the batch's writes land.
        sending = asyncio.ensure_future(self.send(outbound)) if outbound else None
        try:
            if result.interactions:
                reads = await stretches.run(
                    lambda: self.processor.learn_reads(result.interactions), "learn reads"
                )
                model_state = await self._retrying(
                    functools.partial(fetch_reads, self.sink.redis, reads)
                )
                result.writes.extend(
                    await stretches.run(
                        lambda: self.processor.learn(result.interactions, model_state), "learn"
                    )
                )
        finally:
            if sending is not None:
                await sending
        extra: list[Write] = [HashIncr(keys.counters(), "dlq", len(letters))] if letters else []
        progress = self._progress(last_offsets)
        held_redis_s = await self._land(result.writes + extra, progress, stretches)
        if self.slates is not None and result.applied:
            self.slates.mark(user_keys)
        # What the part held the loop for (reading replies) against half the budget; its
        # longest stretch of compute (off the loop) against twice it: a part's latency;
        # how long its writes held Redis against their budget: every API read waits
        # behind them.
        load = max(
            self.watch.take_recent() / (self.max_block_s / 2),
            stretches.busiest_s / (self.max_block_s * 2),
            held_redis_s / self.max_script_s,
        )
        if load > 2:
            log.info(
                "part ran long; shrinking parts",
                extra={
                    "stage": stretches.busiest,
                    "ms": round(stretches.busiest_s * 1000),
                    "redis_ms": round(held_redis_s * 1000, 1),
                    "cost_limit": self.sizer.limit,
                    "events": len(events),
                },
            )
        self.sizer.observe(load)
        self._post_webhooks(result)
        if result.touched_categories:
            await self._retrying(
                functools.partial(self.sink.refresh_tertiles, sorted(result.touched_categories))
            )
        if result.changed_items:
            await self.sink.announce_catalog_changes(sorted(result.changed_items))
        return result

    async def _land(
        self, writes: list[Write], progress: list[Write], stretches: Stretches
    ) -> float:
        """Apply a part's writes once. They carry a marker that lands with them (after
        them on a Cluster); when an attempt fails without an answer, the marker tells
        whether it landed before anything is sent again. Returns how long the writes
        held Redis, in seconds."""
        if not writes and not progress:
            return 0.0
        marker = keys.part_applied(uuid.uuid4().hex)
        landed = [Put(marker, b"1", ttl_s=PART_MARKER_TTL_S)]
        prepared = await stretches.run(
            lambda: self.sink.prepare(coalesce(writes), [*progress, *landed], marker), "pack"
        )
        attempts = 0

        async def attempt() -> float:
            nonlocal attempts
            attempts += 1
            if attempts > 1 and await self.sink.redis.exists(marker):
                return 0.0
            return await self.sink.apply_prepared(prepared)

        return await self._retrying(attempt)

    # --- promotions ----------------------------------------------------------------------------
    async def _settle(self, result: BatchResult, users: dict[str, UserState]) -> None:
        """Reserve caps and budgets atomically, attach items, then let the processor send
        what was allowed (streams/processor.py ``settle``)."""
        if not result.promotions:
            return
        engine = self.processor.triggers
        requests = []
        for user_key, promotion in result.promotions:
            campaign = engine.campaigns.get(promotion["campaign_id"])
            if campaign is None:
                continue
            cap = campaign.guardrails.cap_per_user
            requests.append(
                Request(
                    user_key,
                    promotion["campaign_id"],
                    promotion["promotion_id"],
                    promotion["created_at"],
                    int(cap.window_hours * 3_600_000),
                    cap.count,
                    campaign.guardrails.budget,
                )
            )
        if self.reserver is None:
            self.reserver = Reserver(self.sink.redis, engine.daily_cap)
            self.items = PromotionItems(self.sink.redis, self.processor.settings)
        assert self.items is not None
        # Every read first, then the changes: a retry after a Redis error starts afresh.
        refused = await self.reserver.reserve(requests)
        chosen: dict[int, list[str]] = {}
        for number, (user_key, promotion) in enumerate(result.promotions):
            campaign = engine.campaigns.get(promotion["campaign_id"])
            wanted = campaign.action.recommendations if campaign else 0
            if wanted and promotion["promotion_id"] not in refused:
                state = users[user_key]
                chosen[number] = await self.items.recommend(user_key, state, wanted, self.clock())
        ids = sorted({i["item_id"] for _, p in result.promotions for i in p["items"]})
        ids = sorted({*ids, *(item for items in chosen.values() for item in items)})
        records = await self.items.records(ids)
        for number, items in chosen.items():
            result.promotions[number][1]["items"].extend({"item_id": item} for item in items)
        self.processor.settle(result, users, refused, records)

    async def _read_prices(
        self, events: list[PositionedEvent]
    ) -> dict[str, tuple[float | None, list[str]]]:
        """Price before the batch and recent viewers of each upserted item (pipelined
        reads, never one script: the keys live on different slots), when a campaign
        watches prices."""
        if not self.processor.triggers.watch_prices:
            return {}
        items = sorted({e.event.props.item_id for e in events if e.event.is_catalog})
        if not items:
            return {}
        since = self.clock() - PRICE_DROP_LOOKBACK_MS
        pipe = self.sink.redis.pipeline(transaction=False)
        for item in items:
            pipe.hget(keys.item_record(item), "price")
            pipe.zrangebyscore(keys.item_watchers(item), since, "+inf")
        replies = await pipe.execute()
        prices: dict[str, tuple[float | None, list[str]]] = {}
        for index, item in enumerate(items):
            price, watchers = replies[2 * index], replies[2 * index + 1]
            before = float(price) if price not in (None, b"", "") else None
            prices[item] = (before, [as_text(w) for w in watchers])
        return prices

    def _post_webhooks(self, result: BatchResult) -> None:
        if not result.webhooks:
            return
        if self.webhooks is None:
            settings = self.processor.settings
            self.webhooks = WebhookDispatcher(
                self._webhook_dead_letter,
                timeout_s=settings.webhook_timeout_s,
                retries=settings.webhook_retries,
                backoff_s=settings.webhook_backoff_s,
                concurrency=settings.webhook_concurrency,
            )
        for url, promotion in result.webhooks:
            self.webhooks.submit(url, promotion)

    async def _webhook_dead_letter(
        self, promotion: dict[str, Any], url: str, error: str, attempts: int
    ) -> None:
        value = dead_letter_value(promotion, url, error, attempts)
        topic = self.processor.settings.promotions_dlq_topic
        await self.send([Outbound(topic, promotion["user_id"].encode(), value)])

    async def _isolate(
        self,
        events: list[PositionedEvent],
        dead: list[DeadLetter],
        last_offsets: dict[int, int] | None,
    ) -> list[BatchResult]:
        """A bug must not become a poison pill: apply events singly and dead-letter the
        ones that still fail, with the error, so the worker keeps going."""
        results = [await self._retrying(functools.partial(self._apply, [], dead))]
        for positioned in events:
            try:
                single = functools.partial(self._apply, [positioned], [])
                results.append(await self._retrying(single))
            except (RedisError, OSError):
                raise
            except Exception as error:
                log.exception(
                    "event failed; dead-lettering it", extra={"type": positioned.event.type}
                )
                letter = DeadLetter(
                    f"internal error: {type(error).__name__}: {error}",
                    orjson.dumps(positioned.raw),
                    positioned.partition,
                    positioned.offset,
                    positioned.index,
                )
                report = functools.partial(self._apply, [], [letter])
                results.append(await self._retrying(report))
        # Only now is the whole batch in Redis: its offsets may say so.
        results.append(await self._retrying(functools.partial(self._apply, [], [], last_offsets)))
        return results

    def _progress(self, last_offsets: dict[int, int] | None) -> list[Write]:
        if not last_offsets or self.progress_key is None:
            return []
        mapping = {str(p): offset for p, offset in sorted(last_offsets.items())}
        return [HashSet(self.progress_key, mapping)]  # type: ignore[arg-type]

    def _dead_letter(self, letter: DeadLetter) -> Outbound:
        return Outbound(self.dlq_topic, b"", letter.to_bytes(self.source_topic))

    async def _retrying(self, operation: Callable[[], Awaitable[T]]) -> T:
        delay = 0.1
        while True:
            try:
                return await operation()
            except (RedisError, OSError) as error:
                if self.stopping:
                    raise
                log.warning(
                    "redis unavailable; retrying",
                    extra={"error": type(error).__name__, "retry_in_s": delay},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)

    # --- definitions and catalog facts -------------------------------------------------------
    async def refresh(self, owns: Owns) -> None:
        """Reload segment definitions when their version moved; backfill new or changed ones.

        Under the lock: a part's compute runs on another thread and must not see the
        definitions change halfway."""
        async with self.lock:
            await self._refresh(owns)

    async def _refresh(self, owns: Owns) -> None:
        redis = self.sink.redis
        version_raw = await redis.get(keys.segment_version())
        version = int(version_raw or 0)
        if version != self.segment_version:
            raw = await redis.hgetall(keys.segment_definitions())
            definitions = []
            for blob in raw.values():
                try:
                    definitions.append(SegmentDefinition.from_json(blob))
                except ValueError as error:  # validated by the API; never fatal here
                    log.error("skipping invalid segment definition", extra={"error": str(error)})
            previous = self.processor.segments.definitions
            registry = SegmentRegistry.from_definitions(definitions)
            changed = [
                name
                for name, d in registry.definitions.items()
                if name not in previous or previous[name].digest != d.digest
            ]
            self.processor.segments = registry
            self.segment_version = version
            for name in changed:
                self._start_backfill(name, registry.definitions[name].version, owns)
        await self._reload_campaigns(owns)
        if not self.tertiles_checked:
            # A worker killed after a batch landed but before it refreshed the tertiles
            # would leave them stale (its catalog events are not redelivered): recompute
            # every category's once at start.
            await self.sink.refresh_all_tertiles()
            self.tertiles_checked = True
        self.tertiles = await self.sink.read_tertiles()

    async def _reload_campaigns(self, owns: Owns) -> None:
        redis = self.sink.redis
        version = int(await redis.get(keys.campaigns_version()) or 0)
        if version == self.campaign_version:
            return
        campaigns = {}
        for blob in (await redis.hgetall(keys.campaigns())).values():
            record = orjson.loads(blob)
            try:
                campaigns[record["id"]] = Campaign.model_validate(record["campaign"])
            except ValueError as error:  # validated by the API; never fatal here
                log.error("skipping invalid campaign", extra={"error": str(error)[:200]})
        settings = self.processor.settings
        before = {cid for cid, _ in self.processor.triggers.of_type("birthday")}
        self.processor.triggers = TriggerEngine(
            campaigns,
            self.processor.rules,
            settings.campaign_daily_cap,
            default_zone=settings.campaign_timezone,
            attribution_ms=int(settings.attribution_days * 86_400_000),
        )
        self.campaign_version = version
        log.info("campaigns loaded", extra={"active": len(self.processor.triggers.campaigns)})
        if {cid for cid, _ in self.processor.triggers.of_type("birthday")} - before:
            # A new birthday campaign: arm the timers of every owned user, returning or not.
            running = self.backfills.get("campaign:birthday")
            if running and not running.done():
                running.cancel()
            task = asyncio.create_task(self._arm_timers(owns))
            task.add_done_callback(_log_failure)
            self.backfills["campaign:birthday"] = task

    async def _arm_timers(self, owns: Owns) -> None:
        page: list[str] = []
        armed = 0
        async for key in self.sink.redis.scan_iter(match=keys.user_profile_pattern(), count=1000):
            page.append(keys.user_of_profile_key(as_text(key)))
            if len(page) >= BACKFILL_PAGE:
                armed += await self._reevaluate(page, owns, "campaign")
                page = []
        if page:
            armed += await self._reevaluate(page, owns, "campaign")
        log.info("campaign timers armed", extra={"evaluated": armed})

    def _start_backfill(self, name: str, version: int, owns: Owns) -> None:
        running = self.backfills.get(name)
        if running and not running.done():
            running.cancel()
        task = asyncio.create_task(self.backfill(name, version, owns))
        task.add_done_callback(_log_failure)
        self.backfills[name] = task

    async def backfill(self, name: str, version: int, owns: Owns) -> None:
        """Evaluate every existing profile this worker owns, with progress in Redis."""
        try:
            await self._backfill(name, version, owns)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            await self.sink.redis.hset(
                keys.segment_backfill(name), mapping={"state": "failed", "error": str(error)[:200]}
            )
            raise

    async def _backfill(self, name: str, version: int, owns: Owns) -> None:
        redis = self.sink.redis
        progress_key = keys.segment_backfill(name)
        total = int(await redis.hget(keys.counters(), "users") or 0)
        await redis.hset(
            progress_key,
            mapping={"state": "running", "done": 0, "total": total, "version": version},
        )
        done = 0
        page: list[str] = []
        async for key in redis.scan_iter(match=keys.user_profile_pattern(), count=1000):
            text = key.decode() if isinstance(key, bytes) else key
            page.append(keys.user_of_profile_key(text))
            if len(page) >= BACKFILL_PAGE:
                done += await self._reevaluate(page, owns, "backfill")
                page = []
                await redis.hincrby(progress_key, "done", BACKFILL_PAGE)
        if page:
            done += await self._reevaluate(page, owns, "backfill")
            await redis.hincrby(progress_key, "done", len(page))
        await redis.hset(progress_key, mapping={"state": "done"})
        log.info("segment backfill finished", extra={"segment": name, "evaluated": done})

    # --- the sweep ------------------------------------------------------------------------
    async def sweep(self, owns: Owns) -> int:
        """Re-evaluate owned users whose clock-driven fields are due to change."""
        now = self.clock()
        redis = self.sink.redis
        swept = 0
        for offset in range(0, SWEEP_MAX_PER_TICK, SWEEP_PAGE):
            due = await redis.zrangebyscore(
                keys.sweep_schedule(), "-inf", now, start=offset, num=SWEEP_PAGE
            )
            if not due:
                break
            swept += await self._reevaluate([as_text(u) for u in due], owns, "sweep")
            if len(due) < SWEEP_PAGE:
                break
        # Campaign timers (cart abandonment…): the owner of each user fires them once.
        timers = await redis.zrangebyscore(
            keys.campaign_timers(), "-inf", now, start=0, num=SWEEP_PAGE
        )
        members = [as_text(m) for m in timers if "|" in as_text(m)]
        users = sorted({m.split("|", 1)[1] for m in members})
        if users:
            swept += await self._reevaluate(users, owns, "timer", timer_members=tuple(members))
        return swept

    async def _reevaluate(
        self,
        user_ids: list[str],
        owns: Owns,
        reason: str,
        timer_members: tuple[str, ...] = (),
    ) -> int:
        async def attempt() -> int:
            users = await self.sink.read_users(user_ids)
            mine = {u: s for u, s in users.items() if owns(u, s)}
            handled = tuple(m for m in timer_members if m.split("|", 1)[1] in mine)
            due: dict[str, list[str]] = {}
            for member in handled:
                timer, user = member.split("|", 1)
                due.setdefault(user, []).append(timer)
            result = await Stretches(self.compute).run(
                lambda: self.processor.reevaluate(mine, self.clock(), self.tertiles, reason, due),
                "reevaluate",
            )
            # Due timers of owned users are handled now (fired, or stale): drop them first,
            # so a timer re-armed by this evaluation (a birthday next year) stays.
            if handled:
                result.writes.insert(0, ZRemove(keys.campaign_timers(), handled))
            await self._settle(result, mine)
            if result.outbound:
                await self.send(result.outbound)
            await self.sink.apply(result.writes)
            self._post_webhooks(result)
            return len(mine)

        async with self.lock:
            return await self._retrying(attempt)


def decode_records(
    records: Sequence[RawRecord],
) -> tuple[list[PositionedEvent], list[DeadLetter]]:
    events: list[PositionedEvent] = []
    dead: list[DeadLetter] = []
    for record in records:
        decoded, rejected = decode_record(record.value, record.partition, record.offset)
        events.extend(decoded)
        dead.extend(rejected)
    return events, dead


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("segment backfill failed", exc_info=task.exception())
