"""Batch logic: fold validated events into user state and models, return Redis writes and
outbound messages. Nothing here talks to Redis or Kafka.

The worker reads what a batch needs (:class:`BatchInput`), calls
:meth:`BatchProcessor.process`, sends the returned messages, then hands the writes to
the sink, which applies them in one pipeline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from currents import keys
from currents.settings import Settings
from currents.writes import (
    HashIncr,
    HashSet,
    Put,
    SetAdd,
    SetRemove,
    Write,
    ZAdd,
    ZKeepTop,
    ZRemove,
)
from online_models.base import Interaction, OnlineModel
from online_models.ranking import build_models
from profiles.consent import apply_consent, personalization_allowed
from profiles.erasure import ErasureScope, erasure_writes
from profiles.fold import ItemFacts, RejectedEvent, fold_event
from profiles.interactions import interactions_of
from profiles.rules import ProfileRules
from profiles.segments import SegmentRegistry, evaluation_context
from profiles.view import LazyProfile, Tertiles, next_change_at, tier
from schemas.events import Event, prop
from schemas.profile import UserState, event_fingerprint, fingerprint
from streams.decode import DeadLetter, PositionedEvent
from triggers.engine import Before, Firing, TriggerEngine, event_view
from triggers.promotions import fill_items

NEW_ITEMS_PER_CATEGORY = 200
REC_CLICKS_KEPT = 20
ATTRIBUTION_WINDOW_MS = 7 * 86_400_000


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message for another topic, sent by the worker before the batch's writes land."""

    topic: str
    key: bytes
    value: bytes


@dataclass
class CatalogEntry:
    version: int | None = None
    category: str | None = None
    brand: str | None = None


@dataclass
class BatchInput:
    events: list[PositionedEvent]
    users: dict[str, UserState]
    catalog: dict[str, CatalogEntry] = field(default_factory=dict)
    now: int = 0
    tertiles: Tertiles = field(default_factory=dict)
    # recommendation_id -> the served-list record (experiment, variant) for attribution.
    recommendations: dict[str, dict[str, Any]] = field(default_factory=dict)
    # user -> epoch ms of their erasure (``keys.user_erased``), for users that have one.
    erased: dict[str, int] = field(default_factory=dict)
    # Upserted item -> (price before the batch, its recent viewers): price-drop campaigns.
    prices: dict[str, tuple[float | None, list[str]]] = field(default_factory=dict)


@dataclass
class BatchResult:
    writes: list[Write] = field(default_factory=list)
    outbound: list[Outbound] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # What the models learn from this batch (they run after the state reads they need).
    interactions: list[Interaction] = field(default_factory=list)
    applied: int = 0
    duplicates: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    touched_categories: set[str] = field(default_factory=set)
    # Items whose catalog record this batch writes (API caches are told once it landed).
    changed_items: set[str] = field(default_factory=set)
    # (user, promotion) the engine decided; :meth:`BatchProcessor.settle` sends them.
    promotions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # (url, promotion) to POST once the batch landed.
    webhooks: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def user_keys_of(events: Iterable[PositionedEvent]) -> list[str]:
    return sorted({e.event.user_key for e in events if e.event.user_key and not e.event.is_catalog})


def recommendation_ids_of(events: Iterable[PositionedEvent]) -> list[str]:
    found = {prop(e.event.props, "recommendation_id") for e in events}
    return sorted(r for r in found if r)


def items_of(events: Iterable[PositionedEvent]) -> list[str]:
    """Catalog items a batch needs to know: upserted ones, and products without facts."""
    wanted: set[str] = set()
    for positioned in events:
        event = positioned.event
        if event.is_catalog:
            wanted.add(event.props.item_id)
        elif (product := prop(event.props, "product_id")) and not (
            prop(event.props, "category") and prop(event.props, "brand")
        ):
            wanted.add(product)
        elif event.type == "order_completed":
            wanted.update(line.product_id for line in event.props.products if not line.category)
    return sorted(wanted)


class BatchProcessor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rules = ProfileRules.from_settings(settings)
        self.weights = settings.event_weights
        self.segments = SegmentRegistry()
        self.triggers = TriggerEngine({}, self.rules)
        self.models: dict[str, OnlineModel] = build_models(settings)

    # --- the batch -------------------------------------------------------------------------
    def process(self, batch: BatchInput) -> BatchResult:
        result = BatchResult()
        changed: dict[str, bool] = {}  # user -> existed before this batch
        facts = {item: ItemFacts(e.category, e.brand) for item, e in batch.catalog.items()}
        catalog = {
            item: CatalogEntry(e.version, e.category, e.brand) for item, e in batch.catalog.items()
        }
        counters: Counter[str] = Counter()
        counters_by_experiment: Counter[tuple[str, str]] = Counter()

        for positioned in batch.events:
            event = positioned.event
            if event.is_catalog:
                if self._apply_catalog(event, catalog, result):
                    self._price_change(event, batch, result)
                    result.applied += 1
                    result.by_type[event.type] += 1
                else:
                    result.duplicates += 1
                continue
            user_key = event.user_key
            assert user_key is not None  # validated: user events carry an id
            if event.type == "user_erased":
                self._erase(user_key, batch, result)
                changed.pop(user_key, None)
                result.applied += 1
                result.by_type[event.type] += 1
                continue
            erased_at = batch.erased.get(user_key)
            if erased_at is not None and event.ts <= erased_at:
                counters["erased_dropped"] += 1  # a replay must not resurrect the user
                continue
            state = batch.users.get(user_key)
            if state is None:
                state = batch.users[user_key] = UserState()
            existed = state.exists
            if not self._first_delivery(state, positioned):
                result.duplicates += 1
                continue
            state.applied_at = batch.now
            if event.type == "consent_updated":
                props = event.props
                apply_consent(
                    state,
                    personalization=props.personalization,
                    marketing=props.marketing,
                    ts=event.ts,
                )
            if event.type == "consent_updated" or not personalization_allowed(state):
                # Without personalization consent the event only counts in the anonymous
                # totals; the state keeps just its dedup memory so a redelivery is caught.
                counters["unpersonalized"] += event.type != "consent_updated"
                changed.setdefault(user_key, existed)
                result.applied += 1
                result.by_type[event.type] += 1
                continue
            if self.triggers and state.timers:
                # Timers that came due before this event fire first, on their due time,
                # exactly as a worker keeping up in real time would have fired them.
                due, timer_writes = self.triggers.due_timers(user_key, state, event.ts, before=True)
                result.writes.extend(timer_writes)
                if due:
                    self._deliver(user_key, due, state, event.ts, batch.tertiles, None, result)
            interactions = interactions_of(
                event,
                state,
                self.weights,
                facts,
                pairs_per_order=self.settings.cooccurrence_pairs_per_order,
            )
            before = Before.of(state, event.ts, self.rules) if self.triggers else None
            try:
                outcome = fold_event(state, event, self.rules, facts, positioned.partition)
            except RejectedEvent as error:
                result.dead_letters.append(
                    DeadLetter(
                        str(error),
                        orjson.dumps(positioned.raw),
                        positioned.partition,
                        positioned.offset,
                        positioned.index,
                    )
                )
                counters["rejected"] += 1
                changed.setdefault(user_key, existed)
                continue
            counters["late_events"] += outcome.late
            counters["traits_dropped"] += outcome.traits_dropped
            result.interactions.extend(interactions)
            self._attribute(event, state, batch.recommendations, counters_by_experiment)
            if before is not None:
                product = prop(event.props, "product_id")
                category = prop(event.props, "category") or (
                    facts[product].category if product in facts else None
                )
                fired, timer_writes = self.triggers.on_event(
                    user_key, event, before, state, category
                )
                result.writes.extend(timer_writes)
                if fired:
                    # Decided at the event, on the event's clock: where batches end, or
                    # how late the worker runs, must not change what is sent (a replay
                    # after a crash gives the same promotions, caps and attribution).
                    self._deliver(
                        user_key, fired, state, event.ts, batch.tertiles, event_view(event), result
                    )
            changed.setdefault(user_key, existed)
            result.applied += 1
            result.by_type[event.type] += 1

        for user_key, existed in sorted(changed.items()):
            counters["users"] += not existed
            self.finish_user(
                user_key,
                batch.users[user_key],
                batch.now,
                batch.tertiles,
                result,
                reason="event",
            )
        self._count(result, counters)
        for (experiment, field_name), amount in sorted(counters_by_experiment.items()):
            result.writes.append(HashIncr(keys.experiment_stats(experiment), field_name, amount))
        return result

    # --- experiment feedback -------------------------------------------------------------------
    @staticmethod
    def _attribute(
        event: Event,
        state: UserState,
        recommendations: dict[str, dict[str, Any]],
        counts: Counter[tuple[str, str]],
    ) -> None:
        """Impressions, clicks and attributed purchases per experiment variant."""
        record = recommendations.get(prop(event.props, "recommendation_id") or "")
        experiment = (record or {}).get("experiment")
        variant = (record or {}).get("variant")
        if experiment and variant:
            if event.type == "recommendation_shown":
                counts[(experiment, f"{variant}:impressions")] += 1
            elif event.type == "product_clicked":
                counts[(experiment, f"{variant}:clicks")] += 1
                state.rec_clicks[event.props.product_id] = [experiment, variant, event.ts]
                if len(state.rec_clicks) > REC_CLICKS_KEPT:
                    oldest = min(state.rec_clicks, key=lambda item: state.rec_clicks[item][2])
                    del state.rec_clicks[oldest]
        if event.type == "order_completed":
            for line in event.props.products:
                click = state.rec_clicks.pop(line.product_id, None)
                if click and 0 <= event.ts - click[2] <= ATTRIBUTION_WINDOW_MS:
                    counts[(click[0], f"{click[1]}:purchases")] += 1

    def reevaluate(
        self,
        users: dict[str, UserState],
        now: int,
        tertiles: Tertiles,
        reason: str,
        timers: dict[str, list[str]] | None = None,
    ) -> BatchResult:
        """Re-derive clock-driven fields and segments (the sweep and backfills); ``timers``
        are each user's due campaign timer keys from the sorted set."""
        result = BatchResult()
        for user_key, state in sorted(users.items()):
            if state.exists:
                self.finish_user(
                    user_key,
                    state,
                    now,
                    tertiles,
                    result,
                    reason=reason,
                    external_timers=(timers or {}).get(user_key, ()),
                )
            else:  # erased or never seen: nothing to schedule
                result.writes.append(ZRemove(keys.sweep_schedule(), (user_key,)))
        return result

    def finish_user(
        self,
        user_key: str,
        state: UserState,
        now: int,
        tertiles: Tertiles,
        result: BatchResult,
        *,
        reason: str,
        firings: list[Firing] | None = None,
        trigger_event: dict[str, Any] | None = None,
        external_timers: Iterable[str] = (),
    ) -> None:
        """Tier change, segment membership, campaigns, sweep schedule, then the blob."""
        firings = list(firings or [])
        new_tier = tier(state, now, self.rules)
        if new_tier != state.tier:
            firings += self.triggers.on_tier_change(state.tier, new_tier)
            result.outbound.append(
                self._change_message(
                    self.settings.profile_changes_topic,
                    user_key,
                    "tier_changed",
                    now,
                    {"from": state.tier, "to": new_tier, "reason": reason},
                )
            )
            state.tier = new_tier
        if self.segments or state.segments:
            profile = LazyProfile(user_key, state, now, self.rules, tertiles, top=None)
            members = self.segments.members_for(evaluation_context(profile))
            before = {s for s in state.segments if s in self.segments.definitions}
            firings += self.triggers.on_segments_entered(members - before, now)
            for name in sorted(members - before):
                result.writes.append(ZAdd(keys.segment_members(name), {user_key: 0.0}))
                result.outbound.append(
                    self._segment_message(user_key, name, "segment_entered", now, reason)
                )
            for name in sorted(before - members):
                result.writes.append(ZRemove(keys.segment_members(name), (user_key,)))
                result.outbound.append(
                    self._segment_message(user_key, name, "segment_exited", now, reason)
                )
            state.segments = sorted(members)
        if self.triggers:
            result.writes.extend(self.triggers.arm(user_key, state, now))
        if state.timers or external_timers:
            due_firings, timer_writes = self.triggers.due_timers(
                user_key, state, now, external_timers
            )
            firings += due_firings
            result.writes.extend(timer_writes)
        if firings or state.promotions:
            self._deliver(user_key, firings, state, now, tertiles, trigger_event, result)
        due = next_change_at(state, now, self.rules)
        if due is None:
            result.writes.append(ZRemove(keys.sweep_schedule(), (user_key,)))
        else:
            result.writes.append(ZAdd(keys.sweep_schedule(), {user_key: float(due)}))
        result.writes.append(Put(keys.user_profile(user_key), state.to_bytes()))

    # --- promotions ----------------------------------------------------------------------------
    def _deliver(
        self,
        user_key: str,
        firings: list[Firing],
        state: UserState,
        now: int,
        tertiles: Tertiles,
        event: dict[str, Any] | None,
        result: BatchResult,
    ) -> None:
        # Timer firings are decided at their due time, everything else at ``now``.
        groups: dict[int, list[Firing]] = {}
        for firing in firings:
            groups.setdefault(firing.due_at or now, []).append(firing)
        for at, group in sorted(groups.items()) or [(now, [])]:
            profile = LazyProfile(user_key, state, at, self.rules, tertiles, top=None)
            delivery = self.triggers.deliver(user_key, group, state, profile, event, at)
            result.writes.extend(delivery.writes)
            result.promotions += [(user_key, promotion) for promotion in delivery.promotions]

    def settle(
        self,
        result: BatchResult,
        users: dict[str, UserState],
        refused: dict[str, str],
        items: dict[str, dict[str, Any]],
    ) -> None:
        """Send the decided promotions the Redis checks allowed (``refused``: promotion id
        -> reason), with their items' catalog facts (``items``), on their channels; take
        back the refused ones. The users' blobs are written again after the changes."""
        if not result.promotions:
            return
        changed: set[str] = set()
        for user_key, promotion in result.promotions:
            state = users[user_key]
            changed.add(user_key)
            reason = refused.get(promotion["promotion_id"])
            if reason is not None:
                result.writes.extend(self.triggers.revoke(state, promotion, reason))
                continue
            fill_items(promotion, items)
            self.triggers.confirm(state, promotion)
            campaign = self.triggers.campaigns.get(promotion["campaign_id"])
            channels = campaign.action.channels if campaign else ["onsite", "topic"]
            if "topic" in channels:
                result.outbound.append(
                    Outbound(
                        self.settings.promotions_topic, user_key.encode(), orjson.dumps(promotion)
                    )
                )
            if campaign is not None and "webhook" in channels and campaign.action.webhook_url:
                result.webhooks.append((campaign.action.webhook_url, promotion))
        for user_key in sorted(changed):
            result.writes.append(Put(keys.user_profile(user_key), users[user_key].to_bytes()))

    def _price_change(self, event: Event, batch: BatchInput, result: BatchResult) -> None:
        """An upsert lowering an item's price wakes price-drop campaigns for its viewers."""
        seen = batch.prices.get(event.props.item_id)
        if seen is None or event.props.price is None:
            return
        before, watchers = seen
        if before is not None and event.props.price < before:
            result.writes += self.triggers.on_price_drop(
                event.props.item_id, event.props.price, watchers
            )
        batch.prices[event.props.item_id] = (event.props.price, watchers)

    # --- outbound messages -------------------------------------------------------------------
    def _change_message(
        self, topic: str, user_key: str, kind: str, now: int, body: dict[str, Any]
    ) -> Outbound:
        event_id = fingerprint(f"{kind}|{user_key}|{body}|{now}", 12)
        value = {"event_id": event_id, "type": kind, "user_id": user_key, "timestamp": now, **body}
        return Outbound(topic, user_key.encode(), orjson.dumps(value))

    def _segment_message(
        self, user_key: str, segment: str, kind: str, now: int, reason: str
    ) -> Outbound:
        return self._change_message(
            self.settings.segments_topic,
            user_key,
            kind,
            now,
            {"segment": segment, "reason": reason},
        )

    # --- dedup -------------------------------------------------------------------------------
    def _erase(self, user_key: str, batch: BatchInput, result: BatchResult) -> None:
        """Delete what this batch could have rewritten after the API's erasure, and forget
        the user in this batch; later (newer) events start a fresh profile. What a batch
        can have touched is in the shopper's own state: their segments, timers, and the
        items they viewed or carted (price-drop watchers)."""
        state = batch.users.get(user_key) or UserState()
        scope = ErasureScope(
            segments=state.segments,
            timers=state.timers,
            partitions=self.settings.events_partitions,
            items={entry[0] for entry in state.recent} | set(state.cart),
        )
        result.writes.extend(erasure_writes(user_key, scope))
        batch.users[user_key] = UserState()
        result.interactions = [i for i in result.interactions if i.user_id != user_key]

    def _first_delivery(self, state: UserState, positioned: PositionedEvent) -> bool:
        """False for a redelivered record (at or below the partition watermark) or a
        repeated ``event_id``; otherwise remember the event and return True."""
        partition = str(positioned.partition)
        watermark = state.watermarks.get(partition)
        if watermark is not None and positioned.position <= watermark:
            return False
        state.watermarks[partition] = positioned.position
        event_key = event_fingerprint(positioned.event.event_id)
        if event_key in state.seen_ids:
            return False
        state.seen_ids.append(event_key)
        del state.seen_ids[: -self.settings.dedup_event_ids]
        return True

    # --- models --------------------------------------------------------------------------------
    def learn_reads(self, interactions: list[Interaction]) -> list[Any]:
        return [read for model in self.models.values() for read in model.learn_reads(interactions)]

    def learn(self, interactions: list[Interaction], state: Any) -> list[Write]:
        """Every model learns the batch's interactions, in order."""
        writes: list[Write] = []
        for model in self.models.values():
            writes.extend(model.learn(interactions, state))
        return writes

    # --- catalog ---------------------------------------------------------------------------------
    @staticmethod
    def _apply_catalog(event: Event, catalog: dict[str, CatalogEntry], result: BatchResult) -> bool:
        """Last writer by event time wins; an older or repeated upsert changes nothing."""
        item = event.props
        entry = catalog.setdefault(item.item_id, CatalogEntry())
        if entry.version is not None and event.ts <= entry.version:
            return False
        out = result.writes
        if entry.category and entry.category != item.category:
            out.append(ZRemove(keys.category_prices(entry.category), (item.item_id,)))
            result.touched_categories.add(entry.category)
        entry.version, entry.category, entry.brand = event.ts, item.category, item.brand
        record: dict[str, str | bytes | int | float] = {
            "title": item.title,
            "category": item.category or "",
            "brand": item.brand or "",
            "price": item.price if item.price is not None else "",
            "in_stock": int(item.in_stock),
            "tags": orjson.dumps(item.tags),
            "ts": event.ts,
        }
        out.append(HashSet(keys.item_record(item.item_id), record))
        result.changed_items.add(item.item_id)
        out.append(ZAdd(keys.catalog_items(), {item.item_id: float(event.ts)}))
        if item.category and item.price is not None:
            out.append(ZAdd(keys.category_prices(item.category), {item.item_id: item.price}))
            result.touched_categories.add(item.category)
        if item.category:
            newest = keys.category_new_items(item.category)
            out.append(ZAdd(newest, {item.item_id: float(event.ts)}))
            out.append(ZKeepTop(newest, NEW_ITEMS_PER_CATEGORY))
        if item.in_stock:
            out.append(SetRemove(keys.out_of_stock(), (item.item_id,)))
        else:
            out.append(SetAdd(keys.out_of_stock(), (item.item_id,)))
        return True

    @staticmethod
    def _count(result: BatchResult, counters: Counter[str]) -> None:
        name = keys.counters()
        totals = {"events_processed": result.applied, "duplicates": result.duplicates, **counters}
        for field_name, amount in totals.items():
            if amount:
                result.writes.append(HashIncr(name, field_name, amount))
        for event_type, count in sorted(result.by_type.items()):
            result.writes.append(HashIncr(name, f"type:{event_type}", count))
