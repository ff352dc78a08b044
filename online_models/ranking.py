"""The ranking pipeline: candidate pool → blend → reasons. Everything that ranks goes
through :class:`Ranker`: the worker's slates (``streams/slates.py``), promotions'
recommended items, ``currents evaluate`` and the API's fallback; filters and business
rules follow in ``online_models/selection.py``.

Every model proposes at most ``CANDIDATES_PER_MODEL`` items; their union, without the
excluded items, is cut to the ``pool_size`` items with the highest proposal; each active
model's scores over the pool are divided by their maximum and blended with the model's
weight; an item's reason is its largest contribution's. All of it runs on arrays
(``online_models/arrays.py``): a ranking is a few dozen vector operations, not a loop
over candidates.

>>> from online_models.trending import TrendingModel
>>> from online_models.memory import MemoryStore
>>> ranker = Ranker({"trending": TrendingModel()}, {"trending": 1.0})
>>> store, catalog = MemoryStore(), Catalog()
>>> store.apply(ranker.models["trending"].learn(
...     [Interaction("u", "a", "product_viewed", 1.0, 0)], {}))
>>> query = Query(None, now=0)
>>> state = store.decoded(ranker.candidate_reads(query), catalog)
>>> ranked = ranker.rank(query, ranker.pool(query, state, catalog), state, catalog)
>>> ranked.items, ranked.reasons, ranked.personal
(['a'], ['popular now'], [False])
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from currents.settings import Settings
from online_models.arrays import NO_CODE, Catalog, Codes
from online_models.base import (
    RECORD,
    Interaction,
    OnlineModel,
    Proposal,
    Query,
    Read,
    State,
    row_reads,
)
from online_models.content import ContentModel
from online_models.cooccurrence import CooccurrenceModel
from online_models.matrix_factorization import MatrixFactorizationModel
from online_models.session import SessionModel
from online_models.trending import TrendingModel

__all__ = ["DEFAULT_BLEND", "Interaction", "Pool", "Ranked", "Ranker", "build_models"]

# The blend served unless told otherwise (CURRENTS_BLEND's default).
DEFAULT_BLEND: dict[str, float] = Settings.model_fields["blend"].get_default(
    call_default_factory=True
)
CANDIDATES_PER_MODEL = 100
POOL = 300
# Models whose contribution means "we know something about this shopper".
NON_PERSONAL = frozenset({"trending"})
MF_REASON = "shoppers with your taste liked it"
FALLBACK_REASON = "recommended for you"
# Models that score every pooled candidate, not only the ones they proposed.
SCORERS = frozenset({"mf", "content"})


def build_models(settings: Settings) -> dict[str, OnlineModel]:
    """Every model, configured from settings (the worker, the API and the evaluator)."""
    return {
        "cooccurrence": CooccurrenceModel(
            window=settings.cooccurrence_window,
            neighbours=settings.cooccurrence_neighbours,
            half_life_h=settings.cooccurrence_half_life_h,
        ),
        "session": SessionModel(successors=settings.session_successors),
        "mf": MatrixFactorizationModel(
            factors=settings.mf_factors,
            learning_rate=settings.mf_learning_rate,
            negatives=settings.mf_negatives,
            seed=settings.mf_seed,
        ),
        "content": ContentModel(),
        "trending": TrendingModel(
            long_half_life_h=settings.popularity_half_life_h * 7,
            short_half_life_h=settings.popularity_half_life_h / 4,
        ),
    }


def catalog_for(models: Mapping[str, OnlineModel]) -> Catalog:
    """An empty catalog table shaped for these models (their factor size)."""
    mf = models.get("mf")
    return Catalog(factors=getattr(mf, "factors", 0))


@dataclass
class Pool:
    """The items one ranking considers, and what each proposer said about them."""

    codes: Codes
    proposals: dict[str, Proposal] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.codes)


@dataclass
class Ranked:
    """A ranking, best first, as parallel lists."""

    items: list[str] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    sources: list[str | None] = field(default_factory=list)
    personal: list[bool] = field(default_factory=list)
    # Items the pool held past ``limit``.
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.items)


class Ranker:
    def __init__(
        self,
        models: Mapping[str, OnlineModel],
        blend: Mapping[str, float],
        pool_size: int = POOL,
    ) -> None:
        self.models = dict(models)
        self.blend = {name: weight for name, weight in blend.items() if name in self.models}
        self.pool_size = pool_size
        self.active = [(n, self.models[n], w) for n, w in self.blend.items() if w > 0]
        # The catalog rows a ranking reads for its pool: the scorers', and the records
        # that reasons, filters and rules read.
        self.item_rows = frozenset({RECORD}).union(*(m.item_rows for _, m, _ in self.active))
        self._personal_columns = np.array([n not in NON_PERSONAL for n, _, _ in self.active])
        self._weights = np.array([weight for _, _, weight in self.active])
        # Columns by descending model name: argmax's first maximum is the later name.
        self._by_name = np.array(
            sorted(range(len(self.active)), key=lambda c: self.active[c][0], reverse=True),
            np.int64,
        )

    def with_blend(self, blend: Mapping[str, float]) -> Ranker:
        return Ranker(self.models, blend, self.pool_size)

    # --- reads ---------------------------------------------------------------------------------
    def candidate_reads(self, query: Query) -> list[Read]:
        return list(dict.fromkeys(r for _, m, _ in self.active for r in m.candidate_reads(query)))

    def user_reads(self, query: Query) -> list[Read]:
        return list(dict.fromkeys(r for _, m, _ in self.active for r in m.user_reads(query)))

    def item_reads(self, query: Query, items: Sequence[str]) -> list[Read]:
        """Everything :meth:`rank` reads for a pool of ``items``, for a store that keeps
        no catalog table of its own (the evaluator's): :meth:`user_reads` and the
        :attr:`item_rows` of every item."""
        return self.user_reads(query) + row_reads(items, self.item_rows)

    # --- the pool ----------------------------------------------------------------------------
    def pool(
        self,
        query: Query,
        state: State,
        catalog: Catalog,
        excluded: Collection[str] = (),
    ) -> Pool:
        """Every active model's best ``CANDIDATES_PER_MODEL`` proposals, excluded items
        left out, cut to the ``pool_size`` best by their highest proposal."""
        proposals: dict[str, Proposal] = {}
        for name, model, _ in self.active:
            proposal = model.propose(query, state, catalog)
            if proposal is not None and len(proposal):
                keep = top(proposal.codes, proposal.scores, CANDIDATES_PER_MODEL, catalog)
                proposals[name] = Proposal(
                    proposal.codes[keep], proposal.scores[keep], proposal.explain
                )
        if not proposals:
            return Pool(np.zeros(0, np.int64), proposals)
        codes = np.concatenate([p.codes for p in proposals.values()])
        scores = np.concatenate([p.scores for p in proposals.values()])
        best = np.zeros(int(codes.max()) + 1)
        np.maximum.at(best, codes, scores)
        proposed = np.zeros(len(best), bool)
        proposed[codes] = True
        if excluded:
            gone = np.asarray([catalog.items.find(item) for item in excluded], np.int64)
            gone = gone[(gone >= 0) & (gone < len(proposed))]
            proposed[gone] = False
        pooled = np.flatnonzero(proposed)
        pooled = pooled[top(pooled, best[pooled], self.pool_size, catalog)]
        return Pool(np.sort(pooled), proposals)

    # --- blend and reasons -----------------------------------------------------------------------
    def rank(
        self,
        query: Query,
        pool: Pool,
        state: State,
        catalog: Catalog,
        limit: int | None = None,
    ) -> Ranked:
        """The pool blended and ordered (ties by item id), its best ``limit`` explained.
        ``state`` must hold the replies to :meth:`user_reads`, decoded, and ``catalog``
        the pool's :attr:`item_rows`."""
        codes = pool.codes
        if not len(codes) or not self.active:
            return Ranked()
        matrix = np.zeros((len(codes), len(self.active)))
        highest = max([int(codes.max())] + [int(p.codes.max()) for p in pool.proposals.values()])
        slot = np.full(highest + 1, -1)
        slot[codes] = np.arange(len(codes))
        for column, (name, model, _) in enumerate(self.active):
            values = np.zeros(len(codes))
            proposal = pool.proposals.get(name)
            if proposal is not None:
                rows = slot[proposal.codes]
                inside = rows >= 0
                values[rows[inside]] = proposal.scores[inside]
            if name in SCORERS or proposal is None:
                scored = model.score(query, codes, state, catalog)
                if scored is not None:
                    values = np.where(scored > 0, scored, values)
            top_value = values.max()
            if top_value > 0:
                # Scores are never negative: the positive ones over the largest.
                matrix[:, column] = values / top_value
        contributions = matrix * self._weights
        totals = contributions.sum(axis=1)
        positive = matrix > 0
        present = np.flatnonzero(positive.any(axis=1))
        chosen = present
        if limit is not None and len(present) > limit:
            chosen = present[top(codes[present], totals[present], limit, catalog)]
        if not len(chosen):
            return Ranked()
        rows = _by_score_then_id(chosen, totals, codes, catalog.items.names)
        positive = positive[rows]
        # The leader: the largest positive contribution, the later model name on ties.
        shares = np.where(positive, contributions[rows], -1.0)[:, self._by_name]
        leaders = self._by_name[shares.argmax(axis=1)]
        names = catalog.items.names
        ranked = Ranked(truncated=len(rows) < len(present))
        ranked.codes = codes[rows].tolist()
        ranked.items = [names[code] for code in ranked.codes]
        ranked.scores = np.round(totals[rows], 9).tolist()
        ranked.models = [self.active[c][0] for c in leaders.tolist()]
        reasons = self._reasons(query, pool, catalog, codes[rows], leaders)
        ranked.reasons = [reason for reason, _ in reasons]
        ranked.sources = [None if source == NO_CODE else names[source] for _, source in reasons]
        ranked.personal = (positive & self._personal_columns).any(axis=1).tolist()
        return ranked

    def _reasons(
        self, query: Query, pool: Pool, catalog: Catalog, codes: Codes, leaders: np.ndarray
    ) -> list[tuple[str, int]]:
        """Each item's reason: its leader's explanation when the leader proposed it."""
        reasons: list[tuple[str, int] | None] = [None] * len(codes)
        for column, (name, _, _) in enumerate(self.active):
            proposal = pool.proposals.get(name)
            if proposal is None:
                continue
            proposed = np.zeros(max(int(proposal.codes.max()), int(codes.max())) + 1, bool)
            proposed[proposal.codes] = True
            asked = ((leaders == column) & proposed[codes]).nonzero()[0]
            if len(asked):
                positions = asked.tolist()
                for i, reason in zip(positions, proposal.explain(codes[asked]), strict=True):
                    reasons[i] = reason
        # The rest: MF's own reason, else the shopper's brand or category affinity.
        unexplained = [i for i, found in enumerate(reasons) if found is None]
        liked = iter(
            ContentModel.reasons(query, codes[unexplained], catalog) if unexplained else ()
        )
        explained: list[tuple[str, int]] = []
        for i, found in enumerate(reasons):
            if found is None:
                affinity = next(liked)
                mf = self.active[leaders[i]][0] == "mf"
                found = (MF_REASON if mf else affinity or FALLBACK_REASON, NO_CODE)
            explained.append(found)
        return explained


def _by_score_then_id(
    rows: np.ndarray, totals: np.ndarray, codes: Codes, names: list[str]
) -> np.ndarray:
    """``rows`` by descending total, equal totals by item id."""
    order = rows[np.argsort(-totals[rows], kind="stable")]
    ordered = totals[order]
    if len(ordered) > 1 and (ordered[1:] == ordered[:-1]).any():
        total_of, code_of = totals.tolist(), codes.tolist()
        return np.asarray(
            sorted(order.tolist(), key=lambda row: (-total_of[row], names[code_of[row]])), np.int64
        )
    return order


def top(codes: Codes, scores: np.ndarray, k: int, catalog: Catalog) -> np.ndarray:
    """Positions of the ``k`` highest scores; ties at the cut go to the smaller item id,
    so the choice never depends on array order.

    >>> catalog = Catalog(); codes = catalog.codes(["b", "a", "c"])
    >>> top(codes, np.array([1.0, 1.0, 2.0]), 2, catalog).tolist()
    [2, 1]
    """
    if len(scores) <= k:
        return np.arange(len(scores))
    kth = np.partition(scores, len(scores) - k)[len(scores) - k]
    above = np.flatnonzero(scores > kth)
    ties = np.flatnonzero(scores == kth)
    need = k - len(above)
    if len(ties) > need:
        names = catalog.items.names
        ties = np.asarray(sorted(ties.tolist(), key=lambda i: names[codes[i]])[:need], np.int64)
    return np.concatenate([above, ties])
