"""The trigger engine: which campaigns fire for a user, and what gets delivered.

Pure logic: the worker calls it while folding a batch (event triggers, timers to set or
cancel) and when finishing a user (tier and segment triggers, due timers, delivery). It
returns writes and outbound messages; it never talks to Redis or Kafka.

Delivery applies the guardrails in order: one promotion per user and campaign trigger
window (the promotion id is a hash of user, campaign and window, so a replay never sends
twice), marketing consent, the holdout (deterministic per user and campaign), the
per-campaign frequency cap, the daily cap across campaigns, and priority (one promotion
per evaluation, the highest priority wins).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from currents import keys
from currents.buckets import bucket
from currents.writes import HashIncr, Write, ZAdd, ZRemove
from profiles.expressions import PROFILE_FIELDS, PROFILE_PREFIXES, compile_condition
from profiles.fold import cart_lines
from profiles.rules import TIERS
from profiles.segments import evaluation_context
from profiles.view import LazyProfile, lifecycle
from schemas.events import Event
from schemas.profile import UserState, fingerprint
from triggers.campaigns import EVENT_FIELDS, EVENT_PREFIXES, Campaign

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
DAILY_CAP = 3
PROMOTIONS_KEPT = 10
PROMOTION_IDS_KEPT = 50
TEMPLATE_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


@dataclass(frozen=True)
class Firing:
    campaign_id: str
    window: str  # what makes this firing unique for the user (e.g. the cart's anchor time)
    reason: str


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


def _resolve(context: Mapping[str, Any], path: str) -> Any:
    node: Any = context
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return ""
        node = node[part]
    return node


class TriggerEngine:
    def __init__(
        self, campaigns: Mapping[str, Campaign], rules: Any, daily_cap: int = DAILY_CAP
    ) -> None:
        self.campaigns = {cid: c for cid, c in campaigns.items() if c.active}
        self.rules = rules
        self.daily_cap = daily_cap
        self.conditions = {
            cid: compile_condition(
                c.condition,
                {**PROFILE_FIELDS, **EVENT_FIELDS},
                {**PROFILE_PREFIXES, **EVENT_PREFIXES},
            )
            for cid, c in self.campaigns.items()
            if c.condition.strip()
        }

    def __bool__(self) -> bool:
        return bool(self.campaigns)

    def _of_type(self, *types: str) -> list[tuple[str, Campaign]]:
        return sorted((cid, c) for cid, c in self.campaigns.items() if c.trigger.type in types)

    # --- while folding an event ------------------------------------------------------------
    def on_event(
        self, user_id: str, event: Event, before: Before, state: UserState
    ) -> tuple[list[Firing], list[Write]]:
        """Immediate firings for ``event``, and timers to set or cancel."""
        firings: list[Firing] = []
        writes: list[Write] = []
        for cid, campaign in self._of_type("event"):
            if campaign.trigger.event_type == event.type:
                firings.append(Firing(cid, event.event_id, "event"))
        if not before.existed:
            firings += [
                Firing(cid, "first", "first_visit") for cid, _ in self._of_type("first_visit")
            ]
        if event.type == "order_completed" and before.first_order is None:
            firings += [Firing(cid, "first", "new_user") for cid, _ in self._of_type("new_user")]
        if before.lifecycle in {"at_risk", "dormant"}:
            window = str(event.ts // DAY_MS)
            firings += [Firing(cid, window, "win_back") for cid, _ in self._of_type("win_back")]
        for cid, campaign in self._of_type("cart_abandoned"):
            member = f"{cid}|{user_id}"
            if event.type == "product_added":
                due = event.ts + int((campaign.trigger.delay_minutes or 0) * 60_000)
                state.timers[cid] = [event.ts, due]
                writes.append(ZAdd(keys.campaign_timers(), {member: float(due)}))
            elif event.type == "order_completed" and cid in state.timers:
                del state.timers[cid]
                writes.append(ZRemove(keys.campaign_timers(), (member,)))
        return firings, writes

    def on_tier_change(self, old: str, new: str) -> list[Firing]:
        if TIERS.index(new) <= TIERS.index(old):
            return []
        return [
            Firing(cid, f"tier:{new}", "tier_upgraded") for cid, _ in self._of_type("tier_upgraded")
        ]

    def on_segments_entered(self, entered: set[str], now: int) -> list[Firing]:
        return [
            Firing(cid, f"segment:{c.trigger.segment}:{now}", "segment_entered")
            for cid, c in self._of_type("segment_entered")
            if c.trigger.segment in entered
        ]

    def due_timers(
        self, user_id: str, state: UserState, now: int
    ) -> tuple[list[Firing], list[Write]]:
        """Timers of this user that came due: fire (if still relevant) and clear them."""
        firings: list[Firing] = []
        writes: list[Write] = []
        for cid, (anchor, due) in sorted(state.timers.items()):
            if due > now:
                continue
            del state.timers[cid]
            writes.append(ZRemove(keys.campaign_timers(), (f"{cid}|{user_id}",)))
            if cid in self.campaigns and cart_lines(state):
                firings.append(Firing(cid, f"cart:{anchor}", "cart_abandoned"))
        return firings, writes

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
        consent = state.traits.get("marketing_consent", [False])[0] is True
        sent_ids = {p["promotion_id"] for p in state.promotions}
        known = [f for f in firings if f.campaign_id in self.campaigns]
        ordered = sorted(
            known, key=lambda f: (-self.campaigns[f.campaign_id].guardrails.priority, f.campaign_id)
        )
        delivered_one = False
        for firing in ordered:
            campaign = self.campaigns[firing.campaign_id]
            stats = keys.campaign_stats(firing.campaign_id)
            condition = self.conditions.get(firing.campaign_id)
            if condition is not None and not condition(context):
                continue
            promotion_id = fingerprint(f"{user_id}|{firing.campaign_id}|{firing.window}", 12)
            if promotion_id in sent_ids or promotion_id in state.promotion_ids:
                continue  # replayed or duplicated: never twice
            state.promotion_ids.append(promotion_id)
            del state.promotion_ids[:-PROMOTION_IDS_KEPT]
            if not consent:
                delivery.writes.append(HashIncr(stats, "no_consent", 1))
                continue
            arm = state.campaign_arms.setdefault(
                firing.campaign_id,
                "holdout"
                if bucket(f"campaign:{firing.campaign_id}", user_id) < campaign.guardrails.holdout
                else "treatment",
            )
            if arm == "holdout":
                delivery.writes.append(HashIncr(stats, "holdout", 1))
                continue
            if delivered_one or not self._within_caps(firing.campaign_id, campaign, state, now):
                delivery.writes.append(HashIncr(stats, "capped", 1))
                continue
            promotion = self._promotion(promotion_id, firing, campaign, user_id, context, now)
            state.campaign_sends.setdefault(firing.campaign_id, []).append(now)
            del state.campaign_sends[firing.campaign_id][:-50]
            state.promotions.append(promotion)
            del state.promotions[:-PROMOTIONS_KEPT]
            delivery.promotions.append(promotion)
            delivery.writes.append(HashIncr(stats, "sent", 1))
            delivered_one = True
        return delivery

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

    @staticmethod
    def _promotion(
        promotion_id: str,
        firing: Firing,
        campaign: Campaign,
        user_id: str,
        context: Mapping[str, Any],
        now: int,
    ) -> dict[str, Any]:
        action = campaign.action
        coupon = action.coupon_code
        if coupon and action.unique_coupon:
            coupon = f"{coupon}-{promotion_id[:8].upper()}"
        values = {"user_id": user_id, "coupon_code": coupon or "", "campaign": campaign.name}

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            value = values[name] if name in values else _resolve(context, name)
            return str(value)

        return {
            "promotion_id": promotion_id,
            "campaign_id": firing.campaign_id,
            "trigger": firing.reason,
            "user_id": user_id,
            "message": TEMPLATE_FIELD.sub(fill, action.message),
            "discount_percent": action.discount_percent,
            "discount_amount": action.discount_amount,
            "coupon_code": coupon,
            "priority": campaign.guardrails.priority,
            "created_at": now,
            "expires_at": now + int(action.expires_in_hours * HOUR_MS),
        }


def promotion_message(topic: str, promotion: dict[str, Any]) -> tuple[str, bytes, bytes]:
    return topic, promotion["user_id"].encode(), orjson.dumps(promotion)
