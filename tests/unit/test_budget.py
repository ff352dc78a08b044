"""Cost-bounded parts (streams/budget.py) and the bought-together pairs cap."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from profiles.interactions import interactions_of
from schemas.events import parse_event
from schemas.profile import UserState
from streams.budget import PartSizer, event_cost
from streams.decode import PositionedEvent


def order(lines: int, number: int = 0) -> dict[str, Any]:
    return {
        "event_id": f"o-{number}",
        "type": "order_completed",
        "user_id": "u",
        "timestamp": 1_790_000_000_000 + number,
        "properties": {
            "order_id": f"order-{number}",
            "products": [
                {"product_id": f"p{number}-{i}", "price": 1.0, "quantity": 1} for i in range(lines)
            ],
            "revenue": float(lines),
            "currency": "EUR",
        },
    }


def positioned(raw: dict[str, Any], index: int = 0) -> PositionedEvent:
    return PositionedEvent(parse_event(raw), 0, 0, index, raw)


def test_an_order_costs_one_plus_its_lines() -> None:
    assert event_cost(positioned(order(80))) == 81
    view = {
        "event_id": "v",
        "type": "product_viewed",
        "user_id": "u",
        "timestamp": 1_790_000_000_000,
        "properties": {"product_id": "p"},
    }
    assert event_cost(positioned(view)) == 1


@given(st.lists(st.integers(1, 80), min_size=1, max_size=60), st.integers(1, 300))
def test_parts_keep_order_and_stay_within_the_limit(sizes: list[int], limit: int) -> None:
    events = [positioned(order(n, i), i) for i, n in enumerate(sizes)]
    sizer = PartSizer(most=10_000, start=limit)
    parts = list(sizer.cut(events))
    assert [p for part in parts for p in part] == events
    for part in parts:
        cost = sum(event_cost(p) for p in part)
        assert cost <= limit or len(part) == 1  # a costlier event goes alone


def test_the_sizer_shrinks_on_overload_and_grows_back_to_its_ceiling() -> None:
    sizer = PartSizer(most=1000, start=1000)
    sizer.observe(load=10.0)
    assert sizer.limit == 80
    sizer.observe(load=0.9)  # within budget, not well under: unchanged
    assert sizer.limit == 80
    for _ in range(50):
        sizer.observe(load=0.1)
    assert sizer.limit == 1000
    for _ in range(50):
        sizer.observe(load=1000.0)
    assert sizer.limit == 1


@pytest.mark.parametrize(
    ("lines", "per_line"),
    [(1, 21), (3, 20), (6, 10), (10, 6), (60, 1), (80, 1)],
)
def test_an_order_pairs_each_line_with_its_share_of_recent_purchases(
    lines: int, per_line: int
) -> None:
    state = UserState()
    state.purchased = [[f"old-{i}", 0] for i in range(50)]
    event = parse_event(order(lines))
    made = interactions_of(event, state, {"order_completed": 6.0}, {}, pairs_per_order=60)
    assert len(made) == lines
    # Each line pairs with the most recent earlier purchases: the lines before it in
    # the basket first, then the newest old ones.
    assert [len(i.bought_before) for i in made] == [per_line] * lines
    assert made[0].bought_before == tuple(f"old-{i}" for i in range(per_line))
    if lines > 1:
        assert made[-1].bought_before[0] == f"p0-{lines - 2}"
