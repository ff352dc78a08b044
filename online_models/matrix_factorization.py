"""Online matrix factorization with River, trained for implicit feedback.

River's ``FunkMF`` does the SGD (:func:`funk_step` is its ``learn_one``, minus the
wrapper overhead). Plain squared loss on positive-only events teaches it that every
pair scores 1 (it ends up below popularity; ``currents evaluate`` measures
that with :class:`NaiveRiverModel`). Here each event is a positive (y=1) under logistic
loss, paired with ``negatives`` sampled items (y=0) drawn, deterministically, from a
popularity-biased reservoir of recently seen items.

Factors live in Redis as packed little-endian float32 vectors, one record per user
(``{u:<id>}:mf``) and per item (``{i:<id>}:mf``); a batch holds only the handful of vectors it
touches, so nothing is pickled.

>>> model = MatrixFactorizationModel(factors=4, negatives=1, seed=1)
>>> store = MemoryStore()
>>> batch = [Interaction("u", item, "product_viewed", 1.0, ts) for ts, item in enumerate("abab")]
>>> store.apply(model.learn(batch, store.fetch(model.learn_reads(batch))))
>>> query, catalog = Query("u", now=0), Catalog(factors=4)
>>> reads = model.user_reads(query) + row_reads(["a", "zzz"], model.item_rows)
>>> state = store.decoded(reads, catalog)
>>> a, unknown = model.score(query, catalog.codes(["a", "zzz"]), state, catalog).tolist()
>>> 0.0 < a < 1.0, unknown   # a probability; an unknown item gets no score
(True, 0.0)
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from river import optim, reco

from currents import keys
from currents.writes import Put, Write
from online_models.arrays import NO_CODE, Catalog, Codes
from online_models.base import (
    FACTORS,
    Interaction,
    OnlineModel,
    Proposal,
    Query,
    Read,
    State,
    get,
    item_factors_read,
    row_reads,
)
from online_models.memory import MemoryStore

__all__ = [
    "MatrixFactorizationModel",
    "MemoryStore",
    "NaiveRiverModel",
    "pack",
    "row_reads",
    "unpack",
]


def pack(vector: np.ndarray) -> bytes:
    return vector.astype("<f4").tobytes()


def unpack(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float64)


def funk_step(
    user: np.ndarray,
    item: np.ndarray,
    y: float,
    lr: float,
    l2: float,
    clip: float,
    gradient: Callable[[float, float], float],
) -> None:
    """River's ``FunkMF.learn_one`` on one (user, item) pair, in place: the same
    operations in the same order, without its per-call dict and optimizer machinery
    (``tests/unit/test_mf_step.py`` checks the floats are River's)."""
    g_loss = gradient(y, np.dot(user, item).item())
    g_loss = max(min(g_loss, clip), -clip)
    user_grad = g_loss * item + l2 * user
    item_grad = g_loss * user + l2 * item
    user -= lr * user_grad
    item -= lr * item_grad


# Uniform initial factors on [-a, a] have standard deviation a / sqrt(3) = 0.1.
INITIAL_HALF_WIDTH = 0.1 * 3**0.5


class MatrixFactorizationModel(OnlineModel):
    """Parameters
    ----------
    factors
        Latent dimensions (stored as float32: 4 bytes each per user and item).
    learning_rate, l2
        SGD step and L2 penalty (River ``optim.SGD``).
    negatives
        Sampled negatives per positive event.
    reservoir
        Recently seen items negatives are drawn from (popular items appear more often).
    seed
        Makes initial factors and negative draws reproducible.
    """

    name = "mf"
    item_rows = frozenset({FACTORS})

    def __init__(
        self,
        factors: int = 16,
        learning_rate: float = 0.5,
        l2: float = 0.002,
        negatives: int = 1,
        reservoir: int = 2000,
        seed: int = 42,
    ) -> None:
        self.factors = factors
        self.negatives = negatives
        self.seed = seed
        self.recent_items: deque[str] = deque(maxlen=reservoir)
        # The last draws (reservoir, batch, draws): ``learn`` reuses ``learn_reads``'.
        self._drawn: tuple[tuple[str, ...], list[Interaction], list[list[str]]] | None = None
        self._river = reco.FunkMF(
            n_factors=factors,
            optimizer=optim.SGD(learning_rate),
            loss=optim.losses.Log(),
            l2=l2,
            seed=seed,
        )

    # --- state records ---------------------------------------------------------------------
    def initial(self, kind: str, identifier: str) -> np.ndarray:
        """Small random factors fixed by (seed, id): uniform with standard deviation 0.1.

        Derived from a hash rather than a seeded generator, which costs ~50 µs to build."""
        digest = hashlib.blake2b(
            f"{self.seed}:{kind}:{identifier}".encode(), digest_size=4 * self.factors
        ).digest()
        unit = np.frombuffer(digest, dtype="<u4") / 2.0**32  # uniform in [0, 1)
        return (unit - 0.5) * (2 * INITIAL_HALF_WIDTH)

    def _vector(self, state: State, kind: str, identifier: str) -> np.ndarray:
        key = keys.user_factors(identifier) if kind == "u" else keys.item_factors(identifier)
        blob = state.get(get(key))
        if blob is None:
            return self.initial(kind, identifier)
        vector = unpack(blob)
        return vector if vector.shape == (self.factors,) else self.initial(kind, identifier)

    # --- learning ----------------------------------------------------------------------------
    def _negative_draws(self, batch: Sequence[Interaction]) -> list[list[str]]:
        """Each interaction's negatives, drawn from the reservoir as it stands when that
        interaction is learned (the batch's earlier positives included), by a hash of
        (seed, user, item, time): ``learn_reads`` and ``learn`` (and any replay) draw the
        same ones."""
        reservoir = tuple(self.recent_items)
        if self._drawn is not None and self._drawn[0] == reservoir and self._drawn[1] == batch:
            return self._drawn[2]
        pool = deque(reservoir, maxlen=self.recent_items.maxlen)
        draws: list[list[str]] = []
        for interaction in batch:
            if interaction.weight <= 0:
                draws.append([])
                continue
            draws.append(self._draw(pool, interaction))
            pool.append(interaction.item_id)
        self._drawn = (reservoir, list(batch), draws)
        return draws

    def _draw(self, pool: deque[str], interaction: Interaction) -> list[str]:
        if not pool or not self.negatives:
            return []
        digest = hashlib.blake2b(
            f"{self.seed}|{interaction.user_id}|{interaction.item_id}|{interaction.ts}".encode(),
            digest_size=4 * self.negatives * 3,
        ).digest()
        drawn: list[str] = []
        for offset in range(0, len(digest), 4):
            candidate = pool[int.from_bytes(digest[offset : offset + 4], "little") % len(pool)]
            if candidate != interaction.item_id and candidate not in drawn:
                drawn.append(candidate)
            if len(drawn) == self.negatives:
                break
        return drawn

    def learn_reads(self, batch: Sequence[Interaction]) -> list[Read]:
        users = {i.user_id for i in batch if i.weight > 0}
        items = {i.item_id for i in batch if i.weight > 0}
        for negatives in self._negative_draws(batch):
            items.update(negatives)
        return [get(keys.user_factors(u)) for u in sorted(users)] + [
            item_factors_read(i) for i in sorted(items)
        ]

    def learn(self, batch: Sequence[Interaction], state: State) -> list[Write]:
        river = self._river
        lr, l2, clip = river.u_optimizer.learning_rate, river.l2, river.clip_gradient
        gradient = river.loss.gradient
        users: dict[str, np.ndarray] = {}
        items: dict[str, np.ndarray] = {}
        for interaction, negatives in zip(batch, self._negative_draws(batch), strict=True):
            if interaction.weight <= 0:
                continue
            user = interaction.user_id
            if user not in users:
                users[user] = self._vector(state, "u", user)
            for item in (interaction.item_id, *negatives):
                if item not in items:
                    items[item] = self._vector(state, "i", item)
            vector = users[user]
            funk_step(vector, items[interaction.item_id], 1.0, lr, l2, clip, gradient)
            for negative in negatives:
                funk_step(vector, items[negative], 0.0, lr, l2, clip, gradient)
            self.recent_items.append(interaction.item_id)
        writes: list[Write] = [Put(keys.user_factors(u), pack(v)) for u, v in sorted(users.items())]
        writes += [Put(keys.item_factors(i), pack(v)) for i, v in sorted(items.items())]
        return writes

    # --- serving -------------------------------------------------------------------------------
    def user_reads(self, query: Query) -> list[Read]:
        if query.user_id is None:
            return []
        return [get(keys.user_factors(query.user_id))]

    def score(self, query: Query, pool: Codes, state: State, catalog: Catalog) -> np.ndarray | None:
        if query.user_id is None or state.get(get(keys.user_factors(query.user_id))) is None:
            return None
        user = self._vector(state, "u", query.user_id)
        probabilities = 1.0 / (1.0 + np.exp(-(catalog.factors[pool] @ user)))
        return np.where(catalog.has_factors[pool], probabilities, 0.0)


class NaiveRiverModel(OnlineModel):
    """River's FunkMF or BiasedMF trained naively on positives only (y = 1), in memory.

    For measurement: ``currents evaluate`` shows why :class:`MatrixFactorizationModel`
    adds logistic loss and negative sampling. Not used by the engine.
    """

    def __init__(self, kind: str = "funk", factors: int = 16, seed: int = 42) -> None:
        self.name = f"river_{kind}mf_naive"  # type: ignore[misc]
        if kind == "funk":
            self.river: Any = reco.FunkMF(n_factors=factors, optimizer=optim.SGD(0.05), seed=seed)
        else:
            self.river = reco.BiasedMF(
                n_factors=factors,
                bias_optimizer=optim.SGD(0.05),
                latent_optimizer=optim.SGD(0.05),
                seed=seed,
            )
        self.items: set[str] = set()

    def learn(self, batch: Sequence[Interaction], state: State) -> list[Write]:
        for interaction in batch:
            self.river.learn_one(interaction.user_id, interaction.item_id, 1.0)
            self.items.add(interaction.item_id)
        return []

    def propose(self, query: Query, state: State, catalog: Catalog) -> Proposal | None:
        if query.user_id is None or not self.items:
            return None
        items = sorted(self.items)
        scores = [float(self.river.predict_one(query.user_id, i)) for i in items]
        return Proposal(
            catalog.codes(items),
            np.asarray(scores),
            np.zeros(len(items), np.int64),
            [("matrix factorization", NO_CODE)],
        )
