"""The recommendation path's shortcuts build and decode exactly what the plain code did."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from currents import keys
from currents.redis_reads import score_pairs
from currents.text import as_text
from online_models.base import get, hgetall, item_factors_read, item_record_read
from online_models.ranking import NON_PERSONAL
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
