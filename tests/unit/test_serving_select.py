"""Ranking only the head of the pool gives the same response as ranking all of it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from online_models.ranking import Ranked
from online_models.selection import Filters, passes, select
from serving.business_rules import Candidate, Rule, apply_rules


class Item:
    """One ranked item, as the tests build them."""

    def __init__(self, item_id: str, score: float, reason: str, model: str) -> None:
        self.item_id, self.score, self.reason, self.model = item_id, score, reason, model


def head(items: list[Item], limit: int | None) -> Ranked:
    """The ranking's first ``limit`` items (all when None), as the pipeline returns it."""
    kept = items if limit is None else items[:limit]
    return Ranked(
        items=[i.item_id for i in kept],
        scores=[i.score for i in kept],
        models=[i.model for i in kept],
        reasons=[i.reason for i in kept],
        sources=[None] * len(kept),
        personal=[True] * len(kept),
        truncated=len(kept) < len(items),
    )


def reason(ranked: Ranked, position: int) -> str:
    return ranked.reasons[position]


CATEGORIES = ["a", "b", "c"]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple:
    size = draw(st.one_of(st.integers(0, 40), st.integers(60, 200)))
    # Few distinct scores, so ties (broken by item id) are common.
    scores = draw(st.lists(st.integers(1, 40), min_size=size, max_size=size))
    items = [f"i{index:03d}" for index in range(size)]
    records = {
        item: {
            "category": draw(st.sampled_from(CATEGORIES)),
            "in_stock": draw(st.sampled_from(["1", "1", "1", "0"])),
            "price": str(draw(st.integers(1, 100))),
        }
        for item in items
    }
    ranked = sorted(
        (Item(item, score / 7, "r", "m") for item, score in zip(items, scores, strict=True)),
        key=lambda r: (-r.score, r.item_id),
    )
    rules: list[Rule] = []
    for index in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["block", "pin", "block_category"]))
        target = draw(st.sampled_from(items)) if items else "x"
        if kind == "block":
            rules.append(Rule(id=f"b{index}", kind="block", item_id=target))
        elif kind == "block_category":
            rules.append(
                Rule(id=f"c{index}", kind="block", category=draw(st.sampled_from(CATEGORIES)))
            )
        else:
            rules.append(
                Rule(id=f"p{index}", kind="pin", item_id=target, slot=draw(st.integers(1, 5)))
            )
    filters = Filters(
        category=draw(st.sampled_from([None, "a"])),
        max_price=draw(st.sampled_from([None, None, 50.0])),
        diversity=draw(st.sampled_from([None, 1, 1, 2, 5])),
    )
    n = draw(st.integers(1, 12))
    return ranked, records, rules, filters, n


@settings(max_examples=300)
@given(scenarios())
def test_head_of_the_ranking_gives_the_full_rankings_response(scenario: tuple) -> None:
    ranked, records, rules, filters, n = scenario
    pinned = {
        r.item_id: records[r.item_id] for r in rules if r.kind == "pin" and r.item_id in records
    }
    heads: list[int | None] = []

    def rank(limit: int | None) -> Ranked:
        heads.append(limit)
        return head(ranked, limit)

    _, final = select(rank, records.__getitem__, reason, filters, rules, n, pinned)
    full = [
        Candidate(r.item_id, r.score, r.reason, records[r.item_id])
        for r in ranked
        if passes(records[r.item_id], filters)
    ]
    assert final == apply_rules(full, rules, n, pinned, filters.diversity)
    assert heads[0] is not None  # no boost or promote rule: the head is tried first


def test_a_boost_ranks_the_whole_pool() -> None:
    ranked = [Item(f"i{k:03d}", 300.0 - k, "r", "m") for k in range(200)]
    records = {r.item_id: {"category": "a"} for r in ranked}
    boost = Rule(id="lift", kind="boost", item_id="i199", factor=100)
    heads: list[int | None] = []

    def rank(limit: int | None) -> Ranked:
        heads.append(limit)
        return head(ranked, limit)

    _, final = select(rank, records.__getitem__, reason, Filters(), [boost], 5, {})
    assert heads == [None]
    assert final[0].item_id == "i199"


def test_a_head_that_runs_dry_falls_back_to_the_whole_pool() -> None:
    # The first 100 items are all out of the requested category: the head (3n + 30 = 45
    # items) holds nothing that passes, so the whole pool must be ranked.
    ranked = [Item(f"i{k:03d}", 300.0 - k, "r", "m") for k in range(200)]
    records = {r.item_id: {"category": "a" if k >= 100 else "b"} for k, r in enumerate(ranked)}
    heads: list[int | None] = []

    def rank(limit: int | None) -> Ranked:
        heads.append(limit)
        return head(ranked, limit)

    _, final = select(rank, records.__getitem__, reason, Filters(category="a"), [], 5, {})
    assert heads == [45, None]
    assert [c.item_id for c in final] == ["i100", "i101", "i102", "i103", "i104"]


def test_a_diversity_cap_that_exhausts_the_head_falls_back() -> None:
    # One item per category: the head's 45 items span 3 categories, 5 are wanted.
    ranked = [Item(f"i{k:03d}", 300.0 - k, "r", "m") for k in range(200)]
    records = {r.item_id: {"category": f"c{0 if k < 150 else k}"} for k, r in enumerate(ranked)}
    _, final = select(
        lambda limit: head(ranked, limit),
        records.__getitem__,
        reason,
        Filters(diversity=1),
        [],
        5,
        {},
    )
    assert [c.item_id for c in final] == ["i000", "i150", "i151", "i152", "i153"]
