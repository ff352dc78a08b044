"""The recommendation path's shortcuts build and decode exactly what the plain code did."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from currents import keys
from currents.redis_reads import score_pairs
from currents.settings import Settings
from currents.text import as_text
from online_models.base import (
    DerivedMemo,
    MemoState,
    Query,
    get,
    hgetall,
    item_factors_read,
    item_record_read,
)
from online_models.hybrid import NON_PERSONAL, Hybrid, build_models
from serving import cache as read_cache
from serving.cache import ReadCache

ids = st.text(min_size=1, max_size=12)
scores = st.floats(allow_nan=False, width=64)
members = st.binary(min_size=1, max_size=8).map(lambda raw: raw.hex().encode())


@given(ids)
def test_cached_item_reads_are_the_plain_reads(item_id: str) -> None:
    assert item_record_read(item_id) == hgetall(keys.item_record(item_id))
    assert item_factors_read(item_id) == get(keys.item_factors(item_id))


@settings(max_examples=200)
@given(st.lists(st.tuples(members, scores), max_size=30))
def test_score_pairs_reads_both_protocols_like_redis_py(pairs: list[tuple[bytes, float]]) -> None:
    expected = [(as_text(member), float(score)) for member, score in pairs]
    resp3 = [[member, score] for member, score in pairs]
    resp2 = [part for member, score in pairs for part in (member, repr(score).encode())]
    assert score_pairs(resp3) == expected
    assert score_pairs(resp2) == expected


@given(st.sets(st.sampled_from(["trending", "mf", "content", "session", "cooccurrence"])))
def test_personalized_is_any_personal_contribution(names: set[str]) -> None:
    parts = dict.fromkeys(names, 1.0)
    assert (not parts.keys() <= NON_PERSONAL) == any(n not in NON_PERSONAL for n in parts)


def test_reads_in_hand_join_the_answer_without_going_to_redis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[list[Any]] = []

    async def fake_fetch(redis: object, reads: list[Any]) -> dict[Any, Any]:
        asked.append(list(reads))
        return {read: f"redis:{read[1]}" for read in reads}

    monkeypatch.setattr(read_cache, "fetch_reads", fake_fetch)
    cache = ReadCache(clock=lambda: 0.0)
    user = get(keys.user_factors("u"))
    shared = item_factors_read("a")
    reads = [user, shared]

    first = asyncio.run(cache.fetch(None, reads, {user: b"vector"}))  # type: ignore[arg-type]
    assert first == {user: b"vector", shared: "redis:" + shared[1]}
    assert asked == [[shared]]
    second = asyncio.run(cache.fetch(None, reads, {user: b"vector"}))  # type: ignore[arg-type]
    assert second == first and len(asked) == 1  # the shared read is cached: no round trip


item_ids = st.sampled_from([f"i{n}" for n in range(12)])
top_lists = st.lists(st.tuples(item_ids, st.floats(0.0, 100.0)), max_size=8)


# No explain phase: tracing every line of the models made a failure take minutes to report.
@settings(max_examples=150, deadline=None, phases=[Phase.reuse, Phase.generate, Phase.shrink])
@given(
    history=st.lists(item_ids, min_size=1, max_size=5, unique=True),
    categories=st.lists(st.sampled_from(["shoes", "hats", "bags"]), max_size=2, unique=True),
    replies=st.data(),
)
def test_memoised_proposals_equal_the_recomputed_ones(
    history: list[str], categories: list[str], replies: st.DataObject
) -> None:
    settings = Settings(kafka_bootstrap="unused:0", redis_url="redis://unused")
    hybrid = Hybrid(build_models(settings), settings.blend)
    query = Query(
        "u",
        now=1_700_000_000_000,
        history=tuple((item, 1_700_000_000_000 - 60_000 * n) for n, item in enumerate(history)),
        session_items=tuple(history),
        affinities={"category": {c: 1.0 / (n + 1) for n, c in enumerate(categories)}},
        segments=("vip",),
    )
    reads = hybrid.candidate_reads(query)
    state = {read: replies.draw(top_lists) for read in reads if read[0] == "ztop"}
    memo = DerivedMemo()
    expected = hybrid.propose(query, dict(state))
    assert hybrid.propose(query, MemoState(state, memo)) == expected  # fills the memo
    assert hybrid.propose(query, MemoState(state, memo)) == expected  # served from it
    # A refetched reply is a new object: what was derived from the old one is not reused.
    changed = replies.draw(st.sampled_from(sorted(state)))
    state[changed] = [*replies.draw(top_lists), ("i0", 50.0)]
    assert hybrid.propose(query, MemoState(state, memo)) == hybrid.propose(query, dict(state))
