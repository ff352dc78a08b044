"""Hybrid.rank's column fill against the straightforward implementation it replaced."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from currents import keys
from currents.settings import Settings
from online_models.base import Query, Scored, State, get, item_factors_read, item_record_read
from online_models.hybrid import Hybrid, build_models
from online_models.matrix_factorization import pack

ITEMS = [f"i{n}" for n in range(10)]
MODELS = build_models(Settings(kafka_bootstrap="unused:0", redis_url="redis://unused"))
scores = st.one_of(st.floats(-1.0, 50.0), st.just(0.0))
offers = st.dictionaries(
    st.sampled_from(["cooccurrence", "session", "trending", "content", "mf"]),
    st.builds(Scored, scores, st.sampled_from(["r1", "r2"])),
    min_size=1,
)


def reference_blend(hybrid: Hybrid, query: Query, proposals, state: State) -> np.ndarray:
    """The blended totals as the previous rank computed them: normalise() per model."""
    items = sorted(proposals)
    active = hybrid._active()
    position = {item: index for index, item in enumerate(items)}
    matrix = np.zeros((len(items), len(active)))
    for column, (name, model, _) in enumerate(active):
        own = {i: by[name].score for i, by in proposals.items() if name in by}
        rescored = (
            own if own and name not in {"mf", "content"} else model.score(query, items, state)
        )
        merged = {**own, **rescored}
        top = max(merged.values(), default=0.0)
        if top > 0:
            for item, value in merged.items():
                if value > 0:
                    matrix[position[item], column] = value / top
    weights = np.array([weight for _, _, weight in active])
    return (matrix * weights).sum(axis=1)


@settings(max_examples=200, deadline=None)
@given(
    proposals=st.dictionaries(st.sampled_from(ITEMS), offers, min_size=1),
    vectors=st.dictionaries(
        st.sampled_from(ITEMS), st.lists(st.floats(-1, 1), min_size=16, max_size=16)
    ),
    categories=st.dictionaries(st.sampled_from(ITEMS), st.sampled_from(["shoes", "hats"])),
    blend=st.fixed_dictionaries({name: st.sampled_from([0.0, 0.1, 0.5, 1.0]) for name in MODELS}),
)
def test_rank_blends_exactly_like_normalise_per_model(
    proposals: dict[str, dict[str, Scored]],
    vectors: dict[str, list[float]],
    categories: dict[str, str],
    blend: Mapping[str, float],
) -> None:
    hybrid = Hybrid(MODELS, blend)
    query = Query("u", now=0, affinities={"category": {"shoes": 0.7, "hats": 0.2}})
    state: dict = {get(keys.user_factors("u")): pack(np.full(16, 0.5, dtype=np.float32))}
    for item, vector in vectors.items():
        state[item_factors_read(item)] = pack(np.array(vector, dtype=np.float32))
    for item, category in categories.items():
        state[item_record_read(item)] = {"category": category}
    totals = reference_blend(hybrid, query, proposals, state)
    items = sorted(proposals)
    expected = sorted(
        ((items[row], round(float(totals[row]), 9)) for row in range(len(items)) if totals[row]),
        key=lambda pair: (-pair[1], pair[0]),
    )
    ranked = hybrid.rank(query, proposals, state)
    assert sorted(((r.item_id, r.score) for r in ranked), key=lambda p: (-p[1], p[0])) == expected
