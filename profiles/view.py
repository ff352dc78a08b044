"""Derive the public profile from the state blob at a given time.

Everything that depends on the clock (recency, rolling 365-day windows, lifecycle, tier)
is computed here, at read time, so a silent user moves to ``at_risk`` and ``dormant``
without a new event. :func:`next_change_at` tells the sweep when the answer would next
change on its own, so segment memberships can follow.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from profiles.fold import cart_lines, order_refunded_amount, points_balance, session_count
from profiles.rules import DAY_MS, WINDOW_DAYS, ProfileRules
from schemas.profile import UserState

Tertiles = dict[str, tuple[float, float]]


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def live_orders(state: UserState) -> list[tuple[int, float]]:
    """(ts, net revenue) of orders that exist and are not fully refunded, oldest first."""
    orders = []
    for ts, revenue, _ in state.orders.values():
        if ts is None or revenue is None:
            continue
        entry = [ts, revenue, _]
        net = revenue - order_refunded_amount(entry)
        if revenue > 0 and net <= 0:
            continue
        orders.append((ts, net))
    return sorted(orders)


def window_orders(state: UserState, now: int) -> list[tuple[int, float]]:
    start = now - WINDOW_DAYS * DAY_MS
    return [(ts, net) for ts, net in live_orders(state) if ts > start]


def rolling_spend(state: UserState, now: int) -> float:
    return round(sum(net for _, net in window_orders(state, now)), 6)


def _score_up(value: float, thresholds: tuple[float, ...]) -> int:
    """1 + the number of thresholds reached: 1..5 for four thresholds."""
    return 1 + sum(value >= t for t in thresholds)


def rfm(state: UserState, now: int, rules: ProfileRules) -> dict[str, Any]:
    orders = live_orders(state)
    in_window = window_orders(state, now)
    recency = (now - orders[-1][0]) / DAY_MS if orders else None
    frequency = len(in_window)
    monetary = round(sum(net for _, net in in_window), 6)
    r = 1 if recency is None else 5 - sum(recency > t for t in rules.recency_days)
    return {
        "recency_days": None if recency is None else round(recency, 6),
        "frequency": frequency,
        "monetary": monetary,
        "r": r,
        "f": _score_up(frequency, rules.frequency_orders),
        "m": _score_up(monetary, rules.monetary),
    }


def lifecycle(state: UserState, now: int, rules: ProfileRules) -> str:
    orders = live_orders(state)
    if not orders:
        return "prospect"
    last = orders[-1][0]
    days_since = (now - last) / DAY_MS
    if days_since > rules.dormant_days:
        return "dormant"
    if days_since > rules.at_risk_days:
        return "at_risk"
    previous = orders[-2][0] if len(orders) > 1 else None
    if previous is None and state.first_order is not None and state.first_order < last:
        previous = state.first_order
    if (
        previous is not None
        and (last - previous) / DAY_MS > rules.at_risk_days
        and days_since <= rules.win_back_days
    ):
        return "win_back"
    first = state.first_order if state.first_order is not None else orders[0][0]
    if (now - first) / DAY_MS <= rules.new_days:
        return "new"
    if len(window_orders(state, now)) >= rules.loyal_orders:
        return "loyal"
    return "active"


def tier(state: UserState, now: int, rules: ProfileRules) -> str:
    spend = rolling_spend(state, now)
    reached = "basic"
    for name, threshold in rules.tier_thresholds:
        if spend >= threshold:
            reached = name
    return reached


def channel_preference(state: UserState, rules: ProfileRules) -> str | None:
    online, offline = state.channels.get("on", 0), state.channels.get("off", 0)
    total = online + offline
    if not total:
        return None
    if min(online, offline) / total >= rules.omnichannel_share:
        return "omnichannel"
    return "online" if online > offline else "offline"


def shares(table: dict[str, float], top: int | None) -> dict[str, float]:
    """Affinity scores as shares of the user's positive total (0..1), highest first."""
    positive = {k: v for k, v in table.items() if v > 0}
    total = sum(positive.values())
    if not total:
        return {}
    ranked = sorted(positive.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return {key: round(value / total, 9) for key, value in ranked}


def spending(state: UserState, tertiles: Tertiles) -> dict[str, Any]:
    prices = [price for _, price in state.unit_prices]
    if not prices:
        return {"avg_price": None, "median_price": None, "price_band": None}
    median = statistics.median(prices)
    band = None
    weights = {c: n for c, n in state.bought_categories.items() if c in tertiles}
    if weights:
        total = sum(weights.values())
        low = sum(tertiles[c][0] * n for c, n in weights.items()) / total
        high = sum(tertiles[c][1] * n for c, n in weights.items()) / total
        band = "low" if median < low else "high" if median > high else "mid"
    return {
        "avg_price": round(sum(prices) / len(prices), 6),
        "median_price": round(median, 6),
        "price_band": band,
    }


def current_session_items(state: UserState) -> list[str]:
    if not state.session_items:
        return []
    newest = state.session_items[0]
    session, ts = newest[2], newest[1]
    items = []
    for product, item_ts, item_session in state.session_items:
        same = item_session == session if session else ts - item_ts <= 1_800_000
        if same and product not in items:
            items.append(product)
    return items


class LazyProfile(Mapping[str, Any]):
    """The public profile as a mapping whose fields are computed on first access.

    Segment conditions read a handful of fields; deriving only those keeps per-event
    evaluation cheap. ``dict(LazyProfile(...))`` is the full profile.
    """

    def __init__(
        self,
        user_id: str,
        state: UserState,
        now: int,
        rules: ProfileRules,
        tertiles: Tertiles,
        *,
        top: int | None = 10,
    ) -> None:
        self.user_id = user_id
        self.state = state
        self.now = now
        self.rules = rules
        self.tertiles = tertiles
        self.top = top
        self._cache: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._cache:
            compute = _FIELDS.get(name)
            if compute is None:
                raise KeyError(name)
            self._cache[name] = compute(self)
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELDS)

    def __len__(self) -> int:
        return len(_FIELDS)


def _cart(profile: LazyProfile) -> dict[str, Any]:
    lines = cart_lines(profile.state)
    value = round(sum(line["price"] * line["quantity"] for line in lines), 6)
    return {"items": lines, "value": value}


_FIELDS: dict[str, Callable[[LazyProfile], Any]] = {
    "user_id": lambda p: p.user_id,
    "counts": lambda p: dict(sorted(p.state.counts.items())),
    "first_seen": lambda p: _iso(p.state.first_seen),
    "last_seen": lambda p: _iso(p.state.last_seen),
    "sessions": lambda p: session_count(p.state, p.rules),
    "affinities": lambda p: {
        "category": shares(p.state.category_affinity, p.top),
        "brand": shares(p.state.brand_affinity, p.top),
    },
    "spending": lambda p: spending(p.state, p.tertiles),
    "rfm": lambda p: rfm(p.state, p.now, p.rules),
    "lifecycle": lambda p: lifecycle(p.state, p.now, p.rules),
    "tier": lambda p: tier(p.state, p.now, p.rules),
    "points": lambda p: points_balance(p.state, p.rules),
    "channel_preference": lambda p: channel_preference(p.state, p.rules),
    "session": lambda p: {"items": current_session_items(p.state)},
    "cart": _cart,
    "traits": lambda p: {name: value for name, (value, _) in sorted(p.state.traits.items())},
    "segments": lambda p: sorted(p.state.segments),
}


def build_profile(
    user_id: str,
    state: UserState,
    now: int,
    rules: ProfileRules,
    tertiles: Tertiles,
    *,
    top: int | None = 10,
) -> dict[str, Any]:
    return dict(LazyProfile(user_id, state, now, rules, tertiles, top=top))


def next_change_at(state: UserState, now: int, rules: ProfileRules) -> int | None:
    """The earliest time after ``now`` when a clock-driven field (RFM, lifecycle, tier)
    changes by itself, or None when nothing will."""
    orders = live_orders(state)
    if not orders:
        return None
    last = orders[-1][0]
    boundaries = [last + days * DAY_MS + 1 for days in rules.recency_days]
    boundaries += [last + rules.at_risk_days * DAY_MS + 1, last + rules.dormant_days * DAY_MS + 1]
    boundaries.append(last + rules.win_back_days * DAY_MS + 1)
    first = state.first_order if state.first_order is not None else orders[0][0]
    boundaries.append(first + rules.new_days * DAY_MS + 1)
    boundaries += [ts + WINDOW_DAYS * DAY_MS + 1 for ts, _ in orders]
    future = [b for b in boundaries if b > now]
    return min(future) if future else None
