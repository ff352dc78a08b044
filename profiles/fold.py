"""Fold one validated event into a user's state, in event time.

Every part merges so that arrival order does not matter: counters add, first/last seen
are min/max, lists keep the newest entries by event time, affinities add decayed
weights, cart lines add quantity deltas, traits keep the newest value. Sessions are
counted from a time-ordered buffer that settles once it is older than the lateness;
an event older than that is still applied everywhere else, and reported as late.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from profiles.rules import ONLINE_CHANNELS, TRAIT_WHITELIST, ProfileRules
from schemas.events import Event, prop
from schemas.profile import UserState, fingerprint, remember_newest

AFFINITY_GENERATION_HALF_LIVES = 256
ITEM_EVENTS = frozenset(
    {
        "product_viewed",
        "product_clicked",
        "product_favorited",
        "product_added",
        "product_removed",
        "product_shared",
        "product_reviewed",
    }
)
RECENT_ITEM_TYPES = frozenset({"product_viewed", "product_clicked"})


# Marks an order refunded in full (JSON has no infinity to say "all of it").
FULL_REFUND = -1.0


class RejectedEvent(Exception):
    """The event is valid JSON but the engine cannot accept it (e.g. its currency)."""


@dataclass
class FoldOutcome:
    late: bool = False
    traits_dropped: int = 0


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """Catalog attributes the fold needs (from the event, else from the catalog)."""

    category: str | None = None
    brand: str | None = None


def affinity_generation(ts: int, rules: ProfileRules) -> int:
    return int(ts // (rules.affinity_half_life_ms * AFFINITY_GENERATION_HALF_LIVES))


def affinity_growth(ts: int, generation: int, rules: ProfileRules) -> float:
    span = rules.affinity_half_life_ms * AFFINITY_GENERATION_HALF_LIVES
    return float(2.0 ** ((ts - generation * span) / rules.affinity_half_life_ms))


def check_currency(event: Event, rules: ProfileRules) -> float:
    currency = prop(event.props, "currency")
    rate = rules.currency_rate(currency)
    if rate is None:
        raise RejectedEvent(
            f"properties.currency: {currency} is not the base currency {rules.base_currency} "
            "and no conversion rate is configured (CURRENTS_CURRENCY_RATES)"
        )
    return rate


MONETARY_TYPES = frozenset({"order_completed", "order_refunded"})


def admit(event: Event, rules: ProfileRules) -> float:
    """Everything :func:`fold_event` would reject a valid event for, checked before it
    changes anything: the API checks it at ingest with the same rules, so that what it
    accepts is applied. Returns the event's rate into the base currency (1.0 for events
    without an amount); raises :class:`RejectedEvent` naming the field and the setting."""
    return check_currency(event, rules) if event.type in MONETARY_TYPES else 1.0


def fold_event(
    state: UserState,
    event: Event,
    rules: ProfileRules,
    items: dict[str, ItemFacts],
    partition: int | None = None,
) -> FoldOutcome:
    """Apply ``event`` to ``state``. Raises :class:`RejectedEvent` before changing anything."""
    rate = admit(event, rules)
    outcome = FoldOutcome()
    ts = event.ts
    state.partition = partition if partition is not None else state.partition
    state.counts[event.type] = state.counts.get(event.type, 0) + 1
    state.first_seen = ts if state.first_seen is None else min(state.first_seen, ts)
    previous_last_seen = state.last_seen
    state.last_seen = ts if state.last_seen is None else max(state.last_seen, ts)
    if event.channel:
        group = "on" if event.channel in ONLINE_CHANNELS else "off"
        state.channels[group] = state.channels.get(group, 0) + 1

    outcome.late = not _track_session(state, event, rules, previous_last_seen)
    weight = rules.event_weights.get(event.type, 0.0)

    if event.type in ITEM_EVENTS:
        product = event.props.product_id
        facts = _facts(event.props, items.get(product))
        _add_affinity(state, facts, weight, ts, rules)
        if event.type in RECENT_ITEM_TYPES:
            remember_newest(state.recent, product, ts, limit=rules.recent_items)
        if event.type in RECENT_ITEM_TYPES or event.type == "product_added":
            _remember_session_item(state, product, ts, event.session_id, rules)
        if event.type in {"product_added", "product_removed"}:
            sign = 1 if event.type == "product_added" else -1
            _cart_delta(state, product, ts, sign * event.props.quantity, event.props.price, rules)
    elif event.type == "order_completed":
        _apply_order(state, event, rate, weight, items, rules)
    elif event.type == "order_refunded":
        _apply_refund(state, event, rate, rules)
    elif event.type == "coupon_redeemed":
        state.points_used += event.props.points_used
    elif event.type == "identify":
        outcome.traits_dropped = _apply_traits(state, event.props.traits, ts)
    return outcome


# --- sessions ----------------------------------------------------------------------------
def _track_session(
    state: UserState, event: Event, rules: ProfileRules, previous_last_seen: int | None
) -> bool:
    """Buffer [ts, session] in time order and settle what is older than the lateness.

    Returns False when the event is too late to be placed (it is then not counted)."""
    session = fingerprint(event.session_id, 4) if event.session_id else ""
    entry = [event.ts, session]
    settled_ts = state.session_last_settled[0] if state.session_last_settled else None
    if settled_ts is not None and event.ts < settled_ts:
        return False
    buffer = state.session_buffer
    position = len(buffer)
    while position > 0 and buffer[position - 1] > entry:
        position -= 1
    buffer.insert(position, entry)
    horizon = (state.last_seen or event.ts) - rules.lateness_ms
    while buffer and (buffer[0][0] < horizon or len(buffer) > rules.session_buffer_max):
        settled = buffer.pop(0)
        if _starts_session(state.session_last_settled, settled, rules):
            state.sessions_settled += 1
        state.session_last_settled = settled
    return True


def _starts_session(previous: list[Any] | None, entry: list[Any], rules: ProfileRules) -> bool:
    if previous is None:
        return True
    if entry[0] - previous[0] > rules.session_timeout_ms:
        return True
    return bool(entry[1] and previous[1] and entry[1] != previous[1])


def session_count(state: UserState, rules: ProfileRules) -> int:
    count = state.sessions_settled
    previous = state.session_last_settled
    for entry in state.session_buffer:
        count += _starts_session(previous, entry, rules)
        previous = entry
    return count


def _remember_session_item(
    state: UserState, product: str, ts: int, session_id: str | None, rules: ProfileRules
) -> None:
    session = fingerprint(session_id, 4) if session_id else ""
    items = state.session_items
    entry = [product, ts, session]
    if entry in items:
        return
    # A total order (newest first, then product, then session) keeps the list independent
    # of arrival order even when two sessions share a millisecond.
    rank = (-ts, product, session)
    position = 0
    while (
        position < len(items)
        and (-items[position][1], items[position][0], items[position][2]) < rank
    ):
        position += 1
    items.insert(position, entry)
    del items[rules.session_items_kept :]


# --- affinities --------------------------------------------------------------------------
def _facts(props: Any, catalog: ItemFacts | None) -> ItemFacts:
    category = prop(props, "category") or (catalog.category if catalog else None)
    brand = prop(props, "brand") or (catalog.brand if catalog else None)
    return ItemFacts(category, brand)


def _add_affinity(
    state: UserState, facts: ItemFacts, weight: float, ts: int, rules: ProfileRules
) -> None:
    if not weight or not (facts.category or facts.brand):
        return
    generation = affinity_generation(ts, rules)
    if generation > state.affinity_generation:
        scale = 2.0 ** (-AFFINITY_GENERATION_HALF_LIVES * (generation - state.affinity_generation))
        for table in (state.category_affinity, state.brand_affinity):
            for name in table:
                table[name] *= scale
        state.affinity_generation = generation
    amount = weight * affinity_growth(ts, state.affinity_generation, rules)
    for table, key in (
        (state.category_affinity, facts.category),
        (state.brand_affinity, facts.brand),
    ):
        if key:
            table[key] = table.get(key, 0.0) + amount
            if len(table) > rules.affinity_kept:
                del table[min(table, key=lambda k: (table[k], k))]


# --- orders, refunds, points -------------------------------------------------------------
def _apply_order(
    state: UserState,
    event: Event,
    rate: float,
    weight: float,
    items: dict[str, ItemFacts],
    rules: ProfileRules,
) -> None:
    ts = event.ts
    order_key = fingerprint(event.props.order_id)
    entry = state.orders.setdefault(order_key, [None, None, 0.0])
    if entry[0] is not None:  # the same order twice (a new event_id): nothing more to add
        return
    revenue = round(event.props.revenue * rate, 6)
    entry[0], entry[1] = ts, revenue
    state.first_order = ts if state.first_order is None else min(state.first_order, ts)
    state.points_earned += math.floor(revenue * rules.points_per_unit)
    for line in event.props.products:
        facts = _facts(line, items.get(line.product_id))
        _add_affinity(state, facts, weight, ts, rules)
        remember_newest(state.purchased, line.product_id, ts, limit=rules.purchased_items)
        _remember_price(state, ts, round(line.price * rate, 6), rules)
        if facts.category:
            state.bought_categories[facts.category] = (
                state.bought_categories.get(facts.category, 0) + 1
            )
        _cart_clear(state, line.product_id, ts)
    _prune_orders(state, rules)


def _apply_refund(state: UserState, event: Event, rate: float, rules: ProfileRules) -> None:
    order_key = fingerprint(event.props.order_id)
    entry = state.orders.setdefault(order_key, [None, None, 0.0])
    if entry[2] == FULL_REFUND:
        return
    if event.props.revenue is not None:
        entry[2] = round(entry[2] + event.props.revenue * rate, 6)
    elif event.props.products:
        amount = sum(line.price * line.quantity for line in event.props.products) * rate
        entry[2] = round(entry[2] + amount, 6)
    else:  # no amount given: the whole order is refunded
        entry[2] = FULL_REFUND
    _prune_orders(state, rules)


def order_refunded_amount(entry: list[Any]) -> float:
    if entry[1] is None:
        return 0.0
    revenue = float(entry[1])
    return revenue if entry[2] == FULL_REFUND else min(revenue, float(entry[2]))


def points_balance(state: UserState, rules: ProfileRules) -> int:
    refunded = sum(order_refunded_amount(e) for e in state.orders.values())
    return state.points_earned - math.floor(refunded * rules.points_per_unit) - state.points_used


def _remember_price(state: UserState, ts: int, price: float, rules: ProfileRules) -> None:
    prices = state.unit_prices
    entry = [ts, price]
    position = 0
    while position < len(prices) and prices[position] > entry:
        position += 1
    prices.insert(position, entry)
    del prices[rules.unit_prices_kept :]


def _prune_orders(state: UserState, rules: ProfileRules) -> None:
    """Forget orders that left the 365-day window long ago (keep 400 days of history)."""
    if state.last_seen is None:
        return
    horizon = state.last_seen - 400 * 86_400_000
    stale = [key for key, (ts, _, _) in state.orders.items() if ts is not None and ts < horizon]
    for key in stale:
        del state.orders[key]


# --- cart ----------------------------------------------------------------------------------
def _cart_delta(
    state: UserState, product: str, ts: int, delta: int, price: float, rules: ProfileRules
) -> None:
    line = state.cart.setdefault(product, {"d": [], "x": None, "pr": None})
    if line["x"] is not None and ts < line["x"]:
        return  # happened before the order that cleared this line
    line["d"].append([ts, delta])
    line["d"].sort()
    del line["d"][: -rules.cart_entries_per_line]
    # Newest price wins; a same-millisecond tie keeps the higher one so that arrival
    # order never decides.
    if line["pr"] is None or [ts, price] > line["pr"]:
        line["pr"] = [ts, price]


def _cart_clear(state: UserState, product: str, ts: int) -> None:
    line = state.cart.get(product)
    if line is None:
        state.cart[product] = {"d": [], "x": ts, "pr": None}
        return
    line["x"] = ts if line["x"] is None else max(line["x"], ts)
    line["d"] = [entry for entry in line["d"] if entry[0] > line["x"]]


def cart_lines(state: UserState) -> list[dict[str, Any]]:
    lines = []
    for product, line in sorted(state.cart.items()):
        quantity = sum(delta for ts, delta in line["d"] if line["x"] is None or ts > line["x"])
        if quantity > 0 and line["pr"] is not None:
            lines.append({"product_id": product, "quantity": quantity, "price": line["pr"][1]})
    return lines


# --- traits ----------------------------------------------------------------------------------
def _apply_traits(state: UserState, traits: dict[str, Any], ts: int) -> int:
    dropped = 0
    for name, value in traits.items():
        if name not in TRAIT_WHITELIST or not isinstance(value, str | bool | int | float):
            dropped += 1
            continue
        current = state.traits.get(name)
        newer = current is None or ts > current[1]
        same_ms_tie_break = (
            current is not None and ts == current[1] and str(value) > str(current[0])
        )
        if newer or same_ms_tie_break:
            state.traits[name] = [value, ts]
    return dropped
