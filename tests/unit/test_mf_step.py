"""``funk_step`` against River's own ``FunkMF.learn_one``: the same floats, bit for bit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from river import optim, reco

from online_models.base import Interaction
from online_models.matrix_factorization import MatrixFactorizationModel, MemoryStore, funk_step

factors = st.integers(1, 16).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(-3, 3, allow_nan=False), min_size=n, max_size=n),
        st.lists(st.floats(-3, 3, allow_nan=False), min_size=n, max_size=n),
    )
)


@settings(max_examples=300, deadline=None)
@given(
    factors,
    st.sampled_from([0.0, 1.0]),
    st.sampled_from([0.5, 0.05, 3.0]),
    st.sampled_from([0.002, 0.0, 0.3]),
    st.sampled_from([1e12, 0.1]),
)
def test_funk_step_is_river_learn_one(
    vectors: tuple[list[float], list[float]], y: float, lr: float, l2: float, clip: float
) -> None:
    river = reco.FunkMF(
        n_factors=len(vectors[0]),
        optimizer=optim.SGD(lr),
        loss=optim.losses.Log(),
        l2=l2,
        clip_gradient=clip,
    )
    river.u_latents["u"] = np.array(vectors[0])
    river.i_latents["i"] = np.array(vectors[1])
    for _ in range(3):
        river.learn_one("u", "i", y)
    user, item = np.array(vectors[0]), np.array(vectors[1])
    for _ in range(3):
        funk_step(user, item, y, lr, l2, clip, river.loss.gradient)
    assert user.tobytes() == river.u_latents["u"].tobytes()
    assert item.tobytes() == river.i_latents["i"].tobytes()


def test_model_learns_exact_factors() -> None:
    """Pinned from the River-driven implementation: two batches, two negatives each."""
    model = MatrixFactorizationModel(factors=4, negatives=2, seed=1)
    store = MemoryStore()
    for start in (0, 10):
        batch = [
            Interaction("uv"[ts % 2], item, "product_viewed", 1.0 if ts % 3 else 0.0, start + ts)
            for ts, item in enumerate("abcabdca")
        ]
        store.apply(model.learn(batch, store.fetch(model.learn_reads(batch))))
    assert {key: value.hex() for key, value in sorted(store.strings.items())} == {
        "{i:a}:mf": "62a7073e3012e03ce8b936bdb6de883d",
        "{i:b}:mf": "3b5d30bd398a72bb71f6bf3de67fb6bd",
        "{i:c}:mf": "6b275a3ed1792cbc92d218bebb6c303d",
        "{i:d}:mf": "b28183bde7e72fbcceea14bd683e293e",
        "{u:u}:mf": "bda991bdb112523d92e18dbd27f30fbe",
        "{u:v}:mf": "ca3421bea5383f3d792d063e9d9f093c",
    }


def test_cached_draws_equal_fresh_draws() -> None:
    """``learn`` reuses the draws ``learn_reads`` made for the same batch and reservoir;
    another batch, or a replay once the reservoir moved, draws afresh."""
    cached, fresh = (MatrixFactorizationModel(factors=4, negatives=2, seed=3) for _ in "ab")
    stores = MemoryStore(), MemoryStore()
    first = [Interaction("u", item, "product_viewed", 1.0, ts) for ts, item in enumerate("abcd")]
    second = [Interaction("v", item, "product_viewed", 1.0, ts) for ts, item in enumerate("dcba")]
    for batch, other in ((first, second), (second, first), (first, None), (first, None)):
        if other is not None:
            cached.learn_reads(other)
        reads = cached.learn_reads(batch)
        writes = cached.learn(batch, stores[0].fetch(reads))
        fresh._drawn = None
        fresh_reads = fresh.learn_reads(batch)
        fresh._drawn = None
        fresh_writes = fresh.learn(batch, stores[1].fetch(fresh_reads))
        assert (reads, writes) == (fresh_reads, fresh_writes)
        stores[0].apply(writes)
        stores[1].apply(fresh_writes)
