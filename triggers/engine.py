"""The trigger engine: which campaigns fire for a user, and what gets delivered.

Pure logic: the worker calls it while folding a batch (event triggers, timers to set or
cancel) and when finishing a user (tier and segment triggers, due timers, delivery). It
returns writes and outbound messages; it never talks to Redis or Kafka.

Delivery applies the guardrails in order: one promotion per user and campaign trigger
window (the promotion id is a hash of user, campaign and window, so a replay never sends
twice), marketing consent, the holdout (deterministic per user and campaign), the
quiet hours (a promotion due in them is deferred to their end by a timer, not dropped),
the per-campaign frequency cap, the daily cap across campaigns, and priority (one
promotion per evaluation, the highest priority wins). Caps and the campaign budget are
enforced again atomically in Redis before anything is sent (triggers/reserve.py); what
that refuses is taken back with :meth:`TriggerEngine.revoke`.

Timers live in the user's ``timers`` and in the global ``campaign_timers`` sorted set
(member ``<timer key>|<user>``); the key says what fires:
``<campaign>`` (cart and browse abandonment, birthday), ``q:<campaign>:<trigger>:<id>``
(a promotion deferred by quiet hours) and, only in the sorted set, a price drop
``pd:<campaign>:<item fingerprint>:<price cents>`` written by whoever saw the new price.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from currents import keys
from currents.buckets import bucket
from currents.writes import HashIncr, Write, ZAdd, ZKeepTop, ZRemove
from profiles.consent import marketing_allowed
from profiles.expressions import PROFILE_FIELDS, PROFILE_PREFIXES, compile_condition
from profiles.fold import cart_lines
from profiles.rules import TIERS
from profiles.segments import evaluation_context
from profiles.view import LazyProfile, lifecycle
from schemas.events import Event
from schemas.profile import UserState, fingerprint
from triggers.campaigns import EVENT_FIELDS, EVENT_PREFIXES, Campaign
from triggers.measure import expose, measure, parse_arm
from triggers.promotions import build_promotion
from triggers.timing import (
    days_of,
    month_day,
    next_birthday,
    parse_birthday,
    quiet_until,
    start_of,
    zone,
    zone_of_region,
)

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
DAILY_CAP = 3
PROMOTIONS_KEPT = 10
PROMOTION_IDS_KEPT = 50
PRICE_DROP_LOOKBACK_MS = 14 * DAY_MS
WATCHERS_KEPT = 500  # newest viewers kept per item (price drops)
ATTRIBUTION_MS = 7 * DAY_MS


@dataclass(frozen=True)
class Firing:
    campaign_id: str
    window: str  # what makes this firing unique for the user (e.g. the cart's anchor time)
    reason: str
    promotion_id: str | None = None  # set when a deferred promotion comes due
    items: tuple[str, ...] = ()
    due_at: int | None = None  # a timer's due time: the promotion is decided at it


@dataclass(frozen=True)
class Before:
    """What the engine needs to know about a user just before an event."""

    existed: bool
    lifecycle: str
    first_order: int | None

    @classmethod
    def of(cls, state: UserState, ts: int, rules: Any) -> Before:
        return cls(state.exists, lifecycle(state, ts, rules), state.first_order)


@dataclass
class Delivery:
    writes: list[Write] = field(default_factory=list)
    promotions: list[dict[str, Any]] = field(default_factory=list)


class TriggerContext(Mapping[str, Any]):
    """The profile (lazily) plus ``event`` for conditions and message templates."""

    def __init__(self, profile: Mapping[str, Any], event: Mapping[str, Any] | None) -> None:
        self.profile = evaluation_context(profile)
        self.event = event or {}

    def __getitem__(self, name: str) -> Any:
        return self.event if name == "event" else self.profile[name]

    def __iter__(self) -> Any:
        return iter([*self.profile, "event"])

    def __len__(self) -> int:
        return len(self.profile) + 1


def event_view(event: Event) -> dict[str, Any]:
    return {
        "type": event.type,
        "channel": event.channel,
        "properties": event.props.model_dump(mode="json"),
    }


class TriggerEngine:
    def __init__(
        self,
        campaigns: Mapping[str, Campaign],
        rules: Any,
        daily_cap: int = DAILY_CAP,
        *,
        default_zone: str = "UTC",
        attribution_ms: int = ATTRIBUTION_MS,
    ) -> None:
        self.campaigns = {cid: c for cid, c in campaigns.items() if c.active}
        self._of_type: dict[tuple[str, ...], list[tuple[str, Campaign]]] = {}
        self.rules = rules
        self.daily_cap = daily_cap
        self.default_zone = default_zone
        self.attribution_ms = attribution_ms
        # promotion id -> the campaign arm record its exposure replaced, until the Redis
        # checks confirm or revoke the promotion (within one batch).
        self._replaced_arms: dict[str, str | None] = {}
        self.conditions = {
            cid: compile_condition(
                c.condition,
                {**PROFILE_FIELDS, **EVENT_FIELDS},
                {**PROFILE_PREFIXES, **EVENT_PREFIXES},
            )
            for cid, c in self.campaigns.items()
            if c.condition.strip()
        }
        self.watch_prices = bool(self.of_type("price_drop"))

    def __bool__(self) -> bool:
        return bool(self.campaigns)

    def of_type(self, *types: str) -> list[tuple[str, Campaign]]:
        """Active campaigns with one of these trigger types, by id (cached: asked per event)."""
        found = self._of_type.get(types)
        if found is None:
            found = self._of_type[types] = sorted(
                (cid, c) for cid, c in self.campaigns.items() if c.trigger.type in types
            )
        return list(found)

    def user_zone(self, state: UserState) -> Any:
        return zone_of_region(state.traits.get("region", [None])[0], self.default_zone)

    # --- while folding an event ------------------------------------------------------------
    def on_event(
        self,
        user_id: str,
        event: Event,
        before: Before,
        state: UserState,
        category: str | None = None,
    ) -> tuple[list[Firing], list[Write]]:
        """Immediate firings for ``event``, timers to set or cancel, and measurement."""
        firings: list[Firing] = []
        writes: list[Write] = measure(event, state, self.attribution_ms)
        for cid, campaign in self.of_type("event"):
            if campaign.trigger.event_type == event.type:
                firings.append(Firing(cid, event.event_id, "event"))
        if not before.existed:
            firings += [
                Firing(cid, "first", "first_visit") for cid, _ in self.of_type("first_visit")
            ]
        if event.type == "order_completed" and before.first_order is None:
            firings += [Firing(cid, "first", "new_user") for cid, _ in self.of_type("new_user")]
        if before.lifecycle in {"at_risk", "dormant"}:
            window = str(event.ts // DAY_MS)
            firings += [Firing(cid, window, "win_back") for cid, _ in self.of_type("win_back")]
        for cid, campaign in self.of_type("cart_abandoned"):
            member = f"{cid}|{user_id}"
            if event.type == "product_added":
                due = event.ts + int((campaign.trigger.delay_minutes or 0) * 60_000)
                state.timers[cid] = [event.ts, due]
                writes.append(ZAdd(keys.campaign_timers(), {member: float(due)}))
            elif event.type == "order_completed" and cid in state.timers:
                del state.timers[cid]
                writes.append(ZRemove(keys.campaign_timers(), (member,)))
        for cid, campaign in self.of_type("browse_abandoned"):
            writes += self._browse(cid, campaign, user_id, event, state, category)
        if self.watch_prices and event.type in {"product_viewed", "product_added"}:
            watchers = keys.item_watchers(event.props.product_id)
            writes.append(ZAdd(watchers, {user_id: float(event.ts)}))
            writes.append(ZKeepTop(watchers, WATCHERS_KEPT))
        return firings, writes

    def _browse(
        self,
        cid: str,
        campaign: Campaign,
        user_id: str,
        event: Event,
        state: UserState,
        category: str | None,
    ) -> list[Write]:
        """Count views of one category; at ``min_views``, a timer that an add-to-cart or
        an order cancels. Timer: ``[first view, due or 0, views, category fingerprint]``."""
        member = f"{cid}|{user_id}"
        timer = state.timers.get(cid)
        if event.type in {"product_added", "order_completed"}:
            if timer is None:
                return []
            del state.timers[cid]
            return [ZRemove(keys.campaign_timers(), (member,))]
        if event.type != "product_viewed" or not category:
            return []
        delay = int((campaign.trigger.delay_minutes or 0) * 60_000)
        tag = int(fingerprint(category, 4), 16)
        armed = timer is not None and timer[1] > 0
        if timer is None or len(timer) < 4 or (timer[3] != tag and not armed):
            timer = [event.ts, 0, 0, tag]
        elif timer[3] != tag:
            return []  # armed for another category: keep that one
        elif not armed and event.ts - max(timer[0], timer[1]) > delay:
            timer = [event.ts, 0, 0, tag]  # the earlier views went stale
        timer[2] += 1
        state.timers[cid] = timer
        if timer[2] < (campaign.trigger.min_views or 1):
            return []
        timer[1] = max(timer[1], event.ts + delay)
        return [ZAdd(keys.campaign_timers(), {member: float(timer[1])})]

    def on_price_drop(self, item_id: str, price: float, watchers: Iterable[str]) -> list[Write]:
        """A lower price for ``item_id``: a due-now timer per (campaign, recent viewer); the
        owner of each viewer checks its own history when the sweep fires it."""
        campaigns = self.of_type("price_drop")
        if not campaigns:
            return []
        tag = fingerprint(item_id, 6)
        cents = round(price * 100)
        members = {
            f"pd:{cid}:{tag}:{cents}|{user}": 0.0
            for user in sorted(set(watchers))[:WATCHERS_KEPT]
            for cid, _ in campaigns
        }
        return [ZAdd(keys.campaign_timers(), members)] if members else []

    def on_tier_change(self, old: str, new: str) -> list[Firing]:
        if TIERS.index(new) <= TIERS.index(old):
            return []
        return [
            Firing(cid, f"tier:{new}", "tier_upgraded") for cid, _ in self.of_type("tier_upgraded")
        ]

    def on_segments_entered(self, entered: set[str], now: int) -> list[Firing]:
        return [
            Firing(cid, f"segment:{c.trigger.segment}:{now}", "segment_entered")
            for cid, c in self.of_type("segment_entered")
            if c.trigger.segment in entered
        ]

    # --- clock-driven ----------------------------------------------------------------------
    def arm(self, user_id: str, state: UserState, now: int) -> list[Write]:
        """Birthday timers: due at local midnight of the next birthday (today included)."""
        writes: list[Write] = []
        for cid, _ in self.of_type("birthday"):
            birthday = parse_birthday(state.traits.get("birthday", [None])[0])
            current = state.timers.get(cid)
            if birthday is None:
                if current is not None:
                    del state.timers[cid]
                    writes.append(ZRemove(keys.campaign_timers(), (f"{cid}|{user_id}",)))
                continue
            if current is not None and month_day(current[0]) in days_of(birthday):
                continue  # already armed for this birthday
            writes += self._arm_birthday(cid, user_id, state, now, after_today=False)
        return writes

    def _arm_birthday(
        self, cid: str, user_id: str, state: UserState, now: int, *, after_today: bool
    ) -> list[Write]:
        tz = self.user_zone(state)
        local = datetime.fromtimestamp(now / 1000, tz)
        day = next_birthday(state.traits.get("birthday", [None])[0], local, after_today=after_today)
        if day is None:
            return []
        due = start_of(day, tz)
        state.timers[cid] = [day.year * 10_000 + day.month * 100 + day.day, due]
        return [ZAdd(keys.campaign_timers(), {f"{cid}|{user_id}": float(due)})]

    def due_timers(
        self,
        user_id: str,
        state: UserState,
        now: int,
        external: Iterable[str] = (),
        *,
        before: bool = False,
    ) -> tuple[list[Firing], list[Write]]:
        """Timers of this user that came due: fire (if still relevant) and clear them.
        ``external`` are due timer keys found only in the sorted set (price drops).
        With ``before``, only timers due strictly before ``now`` (an event's time: they
        fire ahead of that event, as they would have in real time)."""
        firings: list[Firing] = []
        writes: list[Write] = []
        for key, timer in sorted(state.timers.items()):
            anchor, due = timer[0], timer[1]
            if due <= 0 or due > now or (before and due == now):
                continue
            del state.timers[key]
            writes.append(ZRemove(keys.campaign_timers(), (f"{key}|{user_id}",)))
            if key.startswith("q:"):
                _, cid, reason, promotion_id = key.split(":", 3)
                firings.append(Firing(cid, "", reason, promotion_id=promotion_id, due_at=due))
                continue
            campaign = self.campaigns.get(key)
            if campaign is None:
                continue
            kind = campaign.trigger.type
            if kind == "cart_abandoned" and cart_lines(state):
                firings.append(Firing(key, f"cart:{anchor}", "cart_abandoned", due_at=due))
            elif kind == "browse_abandoned":
                firings.append(Firing(key, f"browse:{anchor}", "browse_abandoned", due_at=due))
            elif kind == "birthday":
                birthday = parse_birthday(state.traits.get("birthday", [None])[0])
                if birthday is not None and month_day(anchor) in days_of(birthday):
                    window = f"birthday:{anchor // 10_000}"
                    firings.append(Firing(key, window, "birthday", due_at=due))
                writes += self._arm_birthday(key, user_id, state, now, after_today=True)
        for key in sorted(set(external) - set(state.timers)):
            if key.startswith("pd:"):
                firings += self._price_drop(key, state, now)
        return firings, writes

    def _price_drop(self, key: str, state: UserState, now: int) -> list[Firing]:
        _, cid, tag, cents = key.split(":", 3)
        if cid not in self.campaigns:
            return []
        since = now - PRICE_DROP_LOOKBACK_MS
        looked = [item for item, ts in state.recent if ts >= since]
        looked += [line["product_id"] for line in cart_lines(state)]
        for item in looked:
            if fingerprint(item, 6) == tag:
                return [Firing(cid, f"price:{tag}:{cents}", "price_drop", items=(item,))]
        return []

    # --- delivery ------------------------------------------------------------------------------
    def deliver(
        self,
        user_id: str,
        firings: list[Firing],
        state: UserState,
        profile: LazyProfile,
        event: Mapping[str, Any] | None,
        now: int,
    ) -> Delivery:
        delivery = Delivery()
        state.promotions = [p for p in state.promotions if p["expires_at"] > now]
        if not firings:
            return delivery
        context = TriggerContext(profile, event)
        consent = marketing_allowed(state)
        sent_ids = {p["promotion_id"] for p in state.promotions}
        known = [f for f in firings if f.campaign_id in self.campaigns]
        ordered = sorted(
            known, key=lambda f: (-self.campaigns[f.campaign_id].guardrails.priority, f.campaign_id)
        )
        delivered_one = False
        for firing in ordered:
            campaign = self.campaigns[firing.campaign_id]
            stats = keys.campaign_stats(firing.campaign_id)
            deferred = firing.promotion_id is not None
            condition = self.conditions.get(firing.campaign_id)
            if not deferred and condition is not None and not condition(context):
                continue
            promotion_id = firing.promotion_id or fingerprint(
                f"{user_id}|{firing.campaign_id}|{firing.window}", 12
            )
            if promotion_id in sent_ids:
                continue
            if not deferred:
                if promotion_id in state.promotion_ids:
                    continue  # replayed or duplicated: never twice
                state.promotion_ids.append(promotion_id)
                del state.promotion_ids[:-PROMOTION_IDS_KEPT]
            if not consent:
                delivery.writes.append(HashIncr(stats, "no_consent", 1))
                continue
            arm = parse_arm(
                state.campaign_arms.setdefault(
                    firing.campaign_id,
                    "holdout"
                    if bucket(f"campaign:{firing.campaign_id}", user_id)
                    < campaign.guardrails.holdout
                    else "treatment",
                )
            )[0]
            if arm == "holdout":
                expose(state, firing.campaign_id, "holdout", now)  # "would have received"
                delivery.writes.append(HashIncr(stats, "holdout", 1))
                continue
            quiet = campaign.guardrails.quiet_hours
            if quiet is not None:
                tz = zone(quiet.timezone) if quiet.timezone else self.user_zone(state)
                until = quiet_until(now, quiet, tz)
                if until is not None:
                    key = f"q:{firing.campaign_id}:{firing.reason}:{promotion_id}"
                    state.timers[key] = [now, until]
                    member = f"{key}|{user_id}"
                    delivery.writes.append(ZAdd(keys.campaign_timers(), {member: float(until)}))
                    delivery.writes.append(HashIncr(stats, "deferred", 1))
                    continue
            if delivered_one or not self._within_caps(firing.campaign_id, campaign, state, now):
                delivery.writes.append(HashIncr(stats, "capped", 1))
                continue
            promotion = build_promotion(
                promotion_id,
                firing.campaign_id,
                campaign,
                trigger=firing.reason,
                user_id=user_id,
                items=firing.items,
                context=context,
                now=now,
            )
            state.campaign_sends.setdefault(firing.campaign_id, []).append(now)
            # Exposed at once, so a later order in the same batch is attributed exactly as
            # it would be in a batch of its own; a revoked promotion restores the record.
            self._replaced_arms[promotion_id] = state.campaign_arms.get(firing.campaign_id)
            expose(state, firing.campaign_id, "treatment", now)
            del state.campaign_sends[firing.campaign_id][:-50]
            state.promotions.append(promotion)
            del state.promotions[:-PROMOTIONS_KEPT]
            delivery.promotions.append(promotion)
            delivery.writes.append(HashIncr(stats, "sent", 1))
            delivered_one = True
        return delivery

    def confirm(self, state: UserState, promotion: dict[str, Any]) -> None:
        """A promotion cleared the Redis checks: its exposure (made when it was decided)
        stands."""
        self._replaced_arms.pop(promotion["promotion_id"], None)
        campaign = self.campaigns.get(promotion["campaign_id"])
        if campaign is not None and "onsite" not in campaign.action.channels:
            state.promotions = [p for p in state.promotions if p is not promotion]

    def revoke(self, state: UserState, promotion: dict[str, Any], reason: str) -> list[Write]:
        """Take back a promotion the Redis checks refused (a cap raced, the budget ran out);
        its id stays decided, so it is never retried."""
        state.promotions = [
            p for p in state.promotions if p["promotion_id"] != promotion["promotion_id"]
        ]
        replaced = self._replaced_arms.pop(promotion["promotion_id"], None)
        if replaced is None:
            state.campaign_arms.pop(promotion["campaign_id"], None)
        else:
            state.campaign_arms[promotion["campaign_id"]] = replaced
        sends = state.campaign_sends.get(promotion["campaign_id"], [])
        if promotion["created_at"] in sends:
            sends.remove(promotion["created_at"])
        stats = keys.campaign_stats(promotion["campaign_id"])
        return [HashIncr(stats, "sent", -1), HashIncr(stats, reason, 1)]

    def _within_caps(
        self, campaign_id: str, campaign: Campaign, state: UserState, now: int
    ) -> bool:
        cap = campaign.guardrails.cap_per_user
        window_start = now - cap.window_hours * HOUR_MS
        recent = [t for t in state.campaign_sends.get(campaign_id, []) if t > window_start]
        if len(recent) >= cap.count:
            return False
        today = sum(1 for times in state.campaign_sends.values() for t in times if t > now - DAY_MS)
        return today < self.daily_cap
