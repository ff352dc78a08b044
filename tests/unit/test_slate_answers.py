"""A slate served through the API's selection equals a ranking made on the spot through
the pipeline, for the same state, variant, filters and rules (hypothesis draws them).

The state is a synthetic shop's replay (the serving benchmark's shoppers, smaller), held
in the in-memory store; the slate goes through its encoding as the API reads it."""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.generator import SyntheticShop
from currents import keys
from currents.settings import Settings
from currents.slate import encode_slate, read_slate
from online_models.arrays import CatalogRecords
from online_models.base import RECORD, row_reads
from online_models.memory import MemoryStore
from online_models.selection import Filters, NeedsRanking, serve, slate_ranking
from profiles.fold import fold_event
from profiles.interactions import interactions_of
from profiles.rules import ProfileRules
from schemas.events import parse_event
from schemas.profile import UserState
from serving.business_rules import Rule
from streams.slates import SlateBuilder

NOW = 1_790_000_000_000 + 6000 * 5000
CATEGORIES = [f"c{i}" for i in range(6)]


@lru_cache(maxsize=1)
def shop_state() -> tuple[SlateBuilder, MemoryStore, dict[str, UserState], list[str]]:
    config = Settings(kafka_bootstrap="unused:0", redis_url="redis://unused")
    builder = SlateBuilder(config)
    models = builder.ranker.models
    rules = ProfileRules.from_settings(config)
    store = MemoryStore()
    shop = SyntheticShop(users=300, items=400, seed=3)
    stream = shop.stream(1_790_000_000_000, session_gap_ms=5000)
    states: dict[str, UserState] = {}
    items: set[str] = set()
    for _ in range(6000):
        event = parse_event(next(stream))
        state = states.setdefault(event.user_key or "", UserState())
        batch = interactions_of(event, state, config.event_weights, {}, pairs_per_order=60)
        fold_event(state, event, rules, {})
        items |= {i.item_id for i in batch}
        if batch:
            reads = [store.fetch(m.learn_reads(batch)) for m in models.values()]
            store.apply(
                [w for m, f in zip(models.values(), reads, strict=True) for w in m.learn(batch, f)]
            )
    rng = random.Random(1)
    for item in sorted(items):
        store.hashes[keys.item_record(item)] = {
            "title": "Item " + item,
            "category": rng.choice(CATEGORIES),
            "brand": rng.choice("xyz"),
            "price": str(rng.randint(1, 100)),
            "in_stock": "0" if rng.random() < 0.1 else "1",
        }
    users = sorted(u for u, s in states.items() if s.recent)
    return builder, store, states, users


def _answers(user: str, n: int, filters: Filters, rules: list[Rule]) -> tuple[Any, Any]:
    builder, store, states, _ = shop_state()
    catalog = builder.catalog
    state = states[user]
    plan = builder.plan(user, state, NOW, None)
    assert plan is not None
    reads = store.decoded(builder.candidate_reads([plan]), catalog)
    builder.pool([plan], reads)
    pooled, rows = builder.pooled([plan])
    reads |= store.decoded(
        builder.user_reads([plan]) + row_reads(catalog.items.names_of(pooled), rows), catalog
    )
    # The items reasons name: the API reads their titles.
    named = [item for item, _ in plan.query.history] + list(plan.query.session_items)
    reads |= store.decoded(row_reads(named, (RECORD,)), catalog)
    pinned = sorted({r.item_id for r in rules if r.kind == "pin" and r.item_id})
    reads |= store.decoded([("hgetall", keys.item_record(i), 0) for i in pinned], catalog)
    excluded = set(state.purchased_item_ids())
    if filters.exclude == "viewed":
        excluded |= set(state.recent_item_ids())

    slate = read_slate(encode_slate(builder.slate(plan, reads, NOW)))
    args = (CatalogRecords(catalog), excluded, pinned, n, filters, rules)
    try:
        from_slate = serve(slate_ranking(slate, lambda items: catalog.codes(items).tolist()), *args)
    except NeedsRanking:
        from_slate = None  # the API ranks on the spot: that is the other answer
    assert plan.pool is not None
    pool = plan.pool

    def on_the_spot(limit: int | None) -> Any:
        return plan.ranker.rank(plan.query, pool, reads, catalog, limit)

    return from_slate, serve(on_the_spot, *args)


rules_strategy = st.lists(
    st.one_of(
        st.builds(lambda c: Rule(kind="block", category=c), st.sampled_from(CATEGORIES)),
        st.builds(
            lambda c, f: Rule(kind="boost", category=c, factor=f),
            st.sampled_from(CATEGORIES),
            st.floats(0.5, 3.0),
        ),
        st.builds(lambda slot: Rule(kind="pin", item_id="sku-00001", slot=slot), st.integers(1, 5)),
    ),
    max_size=2,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    who=st.integers(0, 10_000),
    n=st.integers(1, 30),
    exclude=st.sampled_from(["purchased", "viewed"]),
    low=st.one_of(st.none(), st.integers(1, 60)),
    span=st.one_of(st.none(), st.integers(5, 80)),
    diversity=st.one_of(st.none(), st.integers(1, 5)),
    rules=rules_strategy,
)
def test_a_served_slate_is_the_ranking_made_on_the_spot(
    who: int,
    n: int,
    exclude: str,
    low: int | None,
    span: int | None,
    diversity: int | None,
    rules: list[Rule],
) -> None:
    users = shop_state()[3]
    user = users[who % len(users)]
    high = None if low is None or span is None else low + span
    filters = Filters(exclude, None, low, high, diversity)  # type: ignore[arg-type]
    from_slate, on_the_spot = _answers(user, n, filters, rules)
    if from_slate is None:
        return
    slate_items, slate_personal = from_slate
    spot_items, spot_personal = on_the_spot
    assert [i["item_id"] for i in slate_items] == [i["item_id"] for i in spot_items]
    assert [i["reason"] for i in slate_items] == [i["reason"] for i in spot_items]
    for a, b in zip(slate_items, spot_items, strict=True):
        assert a["score"] == pytest.approx(b["score"], rel=1e-5, abs=1e-6)
    assert slate_personal == spot_personal


def test_the_slate_answers_most_requests_itself() -> None:
    """The property above must not hold by always falling back: the default request and
    ordinary filters are answered from the slate."""
    users = shop_state()[3]
    answered = sum(
        _answers(user, 10, Filters("viewed", None, 10, 80, None), [])[0] is not None
        for user in users[:40]
    )
    assert answered >= 36


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    who=st.integers(0, 10_000),
    n=st.integers(1, 40),
    exclude=st.sampled_from(["purchased", "viewed"]),
)
def test_the_default_request_walk_is_what_selection_and_rules_give(
    who: int, n: int, exclude: str
) -> None:
    """The shortcut for requests without filters or rules (``plain``) answers exactly
    what the general path (select, then the rules) answers: an active rule that matches
    nothing sends the same request down the general path."""
    users = shop_state()[3]
    user = users[who % len(users)]
    filters = Filters(exclude)  # type: ignore[arg-type]
    nothing = [Rule(kind="block", category="no-such-category")]
    _, plain_answer = _answers(user, n, filters, [])
    _, general_answer = _answers(user, n, filters, nothing)
    assert plain_answer == general_answer
