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

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from currents.settings import Settings
from online_models import kernels
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
    """The items one ranking considers, and what the proposers said: every proposal's
    entries (item code, score, reason label, model column), those ``kept`` by the cut,
    and the reasons their labels index."""

    codes: Codes
    entry_codes: Codes = field(default_factory=lambda: np.zeros(0, np.int64))
    entry_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    entry_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    entry_columns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    kept: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    reasons: list[tuple[str, int]] = field(default_factory=list)
    proposed: frozenset[str] = frozenset()

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
        self._names = [name for name, _, _ in self.active]
        self._mf_column = self._names.index("mf") if "mf" in self._names else -1
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
        parts: list[Proposal] = []
        columns: list[int] = []
        names: list[str] = []
        for column, (name, model, _) in enumerate(self.active):
            proposal = model.propose(query, state, catalog)
            if proposal is not None and len(proposal):
                parts.append(proposal)
                columns.append(column)
                names.append(name)
        if not parts:
            return Pool(np.zeros(0, np.int64))
        lengths = [len(p) for p in parts]
        offsets = list(itertools.accumulate([len(p.reasons) for p in parts], initial=0))
        codes = np.concatenate([p.codes for p in parts])
        scores = np.concatenate([p.scores for p in parts])
        gone = np.asarray([catalog.items.find(item) for item in excluded], np.int64)
        ranks, scratch = catalog.items.ranks(), catalog.scratch()
        starts = np.array(list(itertools.accumulate(lengths, initial=0)), np.int64)
        kept, pooled = kernels.pool(
            codes,
            scores,
            starts,
            gone,
            CANDIDATES_PER_MODEL,
            self.pool_size,
            ranks,
            scratch.floats[0],
            scratch.ints,
        )
        return Pool(
            pooled,
            codes,
            scores,
            np.concatenate([p.labels + offset for p, offset in zip(parts, offsets, strict=False)]),
            np.repeat(np.asarray(columns, np.int64), lengths),
            kept,
            [reason for p in parts for reason in p.reasons],
            frozenset(names),
        )

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
        # The scorers' scores over the pool, and those of models that proposed nothing.
        scored = np.zeros((len(codes), len(self.active)))
        for column, (name, model, _) in enumerate(self.active):
            if name in SCORERS or name not in pool.proposed:
                found = model.score(query, codes, state, catalog)
                if found is not None:
                    scored[:, column] = found
        rows, totals, leaders, labels, personal, present = kernels.blend(
            codes,
            pool.entry_codes,
            pool.entry_scores,
            pool.entry_columns,
            pool.entry_labels,
            pool.kept,
            scored,
            self._weights,
            self._by_name,
            self._personal_columns,
            -1 if limit is None else limit,
            catalog.items.ranks(),
            catalog.scratch().ints,
        )
        if not len(rows):
            return Ranked()
        names = catalog.items.names
        ranked = Ranked(truncated=len(rows) < present)
        ranked.codes = codes[rows].tolist()
        ranked.items = [names[code] for code in ranked.codes]
        ranked.scores = np.round(totals, 9).tolist()
        ranked.models = [self._names[c] for c in leaders.tolist()]
        ranked.reasons, ranked.sources = self._reasons(
            query, catalog, codes[rows], leaders, labels, pool.reasons
        )
        ranked.personal = personal.tolist()
        return ranked

    def _reasons(
        self,
        query: Query,
        catalog: Catalog,
        codes: Codes,
        leaders: np.ndarray,
        labels: np.ndarray,
        table: list[tuple[str, int]],
    ) -> tuple[list[str], list[str | None]]:
        """Each item's reason and the item it names: its leader's explanation when the
        leader proposed it (``labels``, into ``table``); else MF's own reason, else the
        shopper's brand or category affinity."""
        names = catalog.items.names
        texts = [reason for reason, _ in table] + [MF_REASON]
        sources = [None if code == NO_CODE else names[code] for _, code in table] + [None]
        # MF's reason is the table's last entry; the rest of the unexplained are liked.
        labels = np.where((labels < 0) & (leaders == self._mf_column), len(table), labels)
        found = labels.tolist()
        liked = np.flatnonzero(labels < 0)
        if len(liked):
            for i, affinity in zip(
                liked.tolist(), ContentModel.reasons(query, codes[liked], catalog), strict=True
            ):
                found[i] = len(texts)
                texts.append(affinity or FALLBACK_REASON)
                sources.append(None)
        return [texts[label] for label in found], [sources[label] for label in found]
