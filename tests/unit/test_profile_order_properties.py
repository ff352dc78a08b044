"""Property tests: arrival order within the lateness does not change the profile."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiles.fold import fold_event
from profiles.rules import DAY_MS, ProfileRules
from profiles.view import build_profile
from schemas.events import parse_event
from schemas.profile import UserState

T0 = 1_767_225_600_000
RULES = ProfileRules()
PRODUCTS = ["p1", "p2", "p3", "p4"]
CATEGORIES = {"p1": "shoes", "p2": "shoes", "p3": "books", "p4": "toys"}


def _properties(kind: str, draw: Any, index: int) -> dict[str, Any]:
    product = draw(st.sampled_from(PRODUCTS))
    line = {
        "product_id": product,
        "category": CATEGORIES[product],
        "brand": "b" + product,
        "price": float(draw(st.integers(1, 200))),
        "quantity": draw(st.integers(1, 3)),
    }
    if kind in {"product_viewed", "product_clicked", "product_favorited"}:
        return {"product_id": product, "category": line["category"], "brand": line["brand"]}
    if kind in {"product_added", "product_removed"}:
        return line
    if kind == "order_completed":
        # An order id names one order: its event may be repeated, never changed.
        return {
            "order_id": f"o{index}",
            "products": [line],
            "revenue": line["price"] * line["quantity"],
            "currency": "EUR",
        }
    if kind == "order_refunded":
        return {
            "order_id": f"o{draw(st.integers(0, 25))}",
            "revenue": float(draw(st.integers(1, 50))),
            "currency": "EUR",
        }
    if kind == "coupon_redeemed":
        return {"points_used": draw(st.integers(0, 20))}
    return {"traits": {"region": draw(st.sampled_from(["DE", "FR"])), "email": "x@y.z"}}


KINDS = [
    "product_viewed",
    "product_clicked",
    "product_favorited",
    "product_added",
    "product_removed",
    "order_completed",
    "order_refunded",
    "coupon_redeemed",
    "identify",
]


@st.composite
def event_lists(draw: Any, span_ms: int) -> list[Any]:
    count = draw(st.integers(1, 25))
    events = []
    for index in range(count):
        kind = draw(st.sampled_from(KINDS))
        raw = {
            "event_id": f"e{index}",
            "type": kind,
            "user_id": "u",
            "session_id": draw(st.sampled_from(["s1", "s2"])),
            "channel": draw(st.sampled_from(["web", "app", "store"])),
            "timestamp": T0 + draw(st.integers(0, span_ms)),
            "properties": _properties(kind, draw, index),
        }
        events.append(parse_event(raw))
    return events


def fold_all(events: list[Any]) -> UserState:
    state = UserState()
    for event in events:
        fold_event(state, event, RULES, {})
        state = UserState.from_bytes(state.to_bytes())
    return state


def profile_of(events: list[Any], now: int) -> dict[str, Any]:
    return build_profile("u", fold_all(events), now, RULES, {"shoes": (50.0, 120.0)})


def assert_same(a: dict[str, Any], b: dict[str, Any], keys: list[str]) -> None:
    for key in keys:
        if key == "affinities":
            for kind in ("category", "brand"):
                assert a[key][kind] == pytest.approx(b[key][kind], abs=1e-9)
        else:
            assert a[key] == b[key], key


ALL_FIELDS = [
    "counts",
    "first_seen",
    "last_seen",
    "sessions",
    "affinities",
    "spending",
    "rfm",
    "lifecycle",
    "tier",
    "points",
    "channel_preference",
    "session",
    "cart",
    "traits",
]
COMMUTATIVE_FIELDS = [f for f in ALL_FIELDS if f not in {"sessions"}]


@settings(deadline=None)
@given(data=st.data())
def test_any_order_within_the_lateness_gives_the_same_profile(data: Any) -> None:
    events = data.draw(event_lists(RULES.lateness_ms))
    shuffled = data.draw(st.permutations(events))
    now = T0 + DAY_MS
    in_order = sorted(events, key=lambda e: e.ts)
    assert_same(profile_of(in_order, now), profile_of(list(shuffled), now), ALL_FIELDS)


@settings(deadline=None)
@given(data=st.data())
def test_commutative_parts_ignore_order_even_beyond_the_lateness(data: Any) -> None:
    events = data.draw(event_lists(20 * DAY_MS))
    shuffled = data.draw(st.permutations(events))
    now = T0 + 30 * DAY_MS
    in_order = sorted(events, key=lambda e: e.ts)
    assert_same(profile_of(in_order, now), profile_of(list(shuffled), now), COMMUTATIVE_FIELDS)
