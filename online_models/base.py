"""The one interface every recommender implements.

A model never talks to Redis. It says which records it needs (:data:`Read` tuples), gets
them back in a mapping, and returns typed writes. The worker fetches reads for a whole
batch in one pipeline and applies the writes in one script call; the API fetches a
query's reads in a fixed number of round trips; the evaluator runs the very same code on
an in-process :class:`~online_models.memory.MemoryStore`.

Reads are ``(op, key, n)``:

- ``("get", key, 0)``: a string value (bytes) or None;
- ``("ztop", key, n)``: the ``n`` highest members of a sorted set, ``[(member, score)]``
  (decoded into ``online_models.arrays.Scores`` before a model ranks with it);
- ``("hgetall", key, 0)``: a hash as ``{field: value}`` (str keys and values).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from currents import keys
from currents.writes import Write
from online_models import kernels
from online_models.arrays import Catalog, Codes, Scores, merged, scores_in

Read = tuple[str, str, int]
State = Mapping[Read, Any]


def get(key: str) -> Read:
    return ("get", key, 0)


def ztop(key: str, n: int) -> Read:
    return ("ztop", key, n)


def hgetall(key: str) -> Read:
    return ("hgetall", key, 0)


# Every recommendation reads these for each of a few hundred pooled items, and the same
# items recur request after request: each read is built once per item, not per use.
@lru_cache(maxsize=65_536)
def item_record_read(item_id: str) -> Read:
    return hgetall(keys.item_record(item_id))


@lru_cache(maxsize=65_536)
def item_factors_read(item_id: str) -> Read:
    return get(keys.item_factors(item_id))


# The per-item rows of the catalog table (``online_models/arrays.Catalog``) that scoring
# and reasons read, and the read that fills each.
RECORD, FACTORS = "record", "factors"
ROW_READS: dict[str, Callable[[str], Read]] = {RECORD: item_record_read, FACTORS: item_factors_read}


def row_reads(items: Iterable[str], rows: Collection[str]) -> list[Read]:
    """The reads that fill the catalog rows ``rows`` of ``items``.

    >>> row_reads(["a"], [RECORD, FACTORS])
    [('hgetall', '{i:a}:item', 0), ('get', '{i:a}:mf', 0)]
    """
    readers = [ROW_READS[row] for row in sorted(rows, reverse=True)]
    return [read(item) for item in items for read in readers]


@dataclass(frozen=True, slots=True)
class Interaction:
    """One thing a user did with an item, as every model learns it."""

    user_id: str
    item_id: str
    kind: str
    weight: float
    ts: int
    category: str | None = None
    brand: str | None = None
    # The user's recent items before this one, newest first.
    history: tuple[str, ...] = ()
    # Items bought before this one, newest first (bought-together).
    bought_before: tuple[str, ...] = ()
    # Earlier items of the same session, newest first.
    session_items: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()


@dataclass(frozen=True)
class Query:
    """What a recommendation request knows about the user and the page."""

    user_id: str | None
    now: int
    # (item, event time) newest first: recently viewed, then recently bought.
    history: tuple[tuple[str, int], ...] = ()
    purchased: frozenset[str] = frozenset()
    session_items: tuple[str, ...] = ()
    context_item: str | None = None
    category: str | None = None
    affinities: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    segments: tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        return bool(self.history or self.session_items or self.affinities.get("category"))


@dataclass(frozen=True)
class Proposal:
    """A model's candidates as arrays: item codes (``online_models/arrays.py``), their
    scores, and per item the index of its reason in :attr:`reasons` (a reason text and
    the code of the item it names, or ``NO_CODE``)."""

    codes: Codes
    scores: np.ndarray
    labels: np.ndarray
    reasons: Sequence[tuple[str, int]]

    def __len__(self) -> int:
        return len(self.codes)

    def explain(self, targets: Codes) -> list[tuple[str, int]]:
        """The reasons of some of the proposed items."""
        position = {code: i for i, code in enumerate(self.codes.tolist())}
        labels = self.labels.tolist()
        return [self.reasons[labels[position[code]]] for code in targets.tolist()]


def lists_proposal(
    lists: Sequence[Scores],
    weights: Sequence[float],
    labels: Sequence[tuple[str, int]],
    catalog: Catalog,
    how: str = "sum",
    values: str = "normalised",
) -> Proposal | None:
    """Each list's items, with its ``normalised`` (or ``raw``) scores times its weight, or
    its weight alone (``constant``), aggregated per item (``how``: sum or max). An item
    is explained by the list of its largest contribution, the first one on ties.

    >>> x = Scores.of(np.array([2, 0]), np.array([1.0, 3.0]))
    >>> y = Scores.of(np.array([2]), np.array([2.0]))
    >>> catalog = Catalog(); _ = catalog.codes(["a", "b", "c"])
    >>> labels = [("from x", 5), ("from y", 6)]
    >>> p = lists_proposal([x, y], [1.0, 1.0], labels, catalog, values="raw")
    >>> p.codes.tolist(), p.scores.tolist(), p.explain(np.array([2, 0]))
    ([2, 0], [3.0, 3.0], [('from y', 6), ('from x', 5)])
    """
    sizes = [scores.size for scores in lists]
    if not any(sizes):
        return None
    lengths = np.array(sizes, np.int64)
    codes = np.concatenate([scores.codes for scores in lists])
    if values == "constant":
        contributions = np.ones(len(codes))
    else:
        parts = [s.normalised if values == "normalised" else s.values for s in lists]
        contributions = np.concatenate(parts)
    scratch = catalog.scratch()
    (total, largest), label = scratch.floats, scratch.ints
    present, scores, chosen = kernels.aggregate(
        codes,
        contributions,
        lengths,
        np.asarray(weights, float),
        how == "max",
        total,
        largest,
        label,
    )
    return Proposal(present, scores, chosen, labels)


class OnlineModel(ABC):
    """Base class of every recommender. Subclasses set ``name`` and implement ``learn``;
    they generate candidates, score given items, or both."""

    name: ClassVar[str]
    # The catalog rows :meth:`score` reads for the pooled items (``RECORD``, ``FACTORS``);
    # the store layer keeps them filled (the worker and the API check a whole pool's
    # freshness with one vector comparison, ``serving/cache.py``).
    item_rows: ClassVar[frozenset[str]] = frozenset()

    # --- learning (worker, evaluator) ----------------------------------------------------
    def learn_reads(self, batch: Sequence[Interaction]) -> list[Read]:
        """Records :meth:`learn` needs for this batch."""
        return []

    @abstractmethod
    def learn(self, batch: Sequence[Interaction], state: State) -> list[Write]:
        """Learn from a batch in order; return the writes that persist what changed."""

    # --- serving (worker slates, API fallback, evaluator) -------------------------------
    def candidate_reads(self, query: Query) -> list[Read]:
        return []

    def propose(self, query: Query, state: State, catalog: Catalog) -> Proposal | None:
        """A bounded set of items this model proposes, with scores and reasons; ``state``
        holds the replies to :meth:`candidate_reads`, decoded (``arrays.decode``)."""
        return None

    def user_reads(self, query: Query) -> list[Read]:
        """The shopper's own records :meth:`score` needs (item rows: :attr:`item_rows`)."""
        return []

    def score(self, query: Query, pool: Codes, state: State, catalog: Catalog) -> np.ndarray | None:
        """Scores for every pooled item (0 where the model has none), for models that
        score items they did not propose; None when they cannot score any. ``state``
        holds the replies to :meth:`user_reads`; ``catalog`` the pool's
        :attr:`item_rows`."""
        return None


GenerationReads = tuple[Read, Read]


def generation_reads(key_of: Callable[[int], str], generation: int, n: int) -> GenerationReads:
    """The top ``n`` of a decayed sorted set in the current and the previous generation."""
    return ztop(key_of(generation), n), ztop(key_of(generation - 1), n)


def generations(state: State, reads: GenerationReads) -> Scores:
    """What :func:`generation_reads` fetched (decoded), as current-generation scores.

    Called for every list of every ranking, and the previous generation is nearly always
    empty: that case returns the current list without merging."""
    current, previous = reads
    before = state.get(previous)
    if before is None or not before.size:
        return scores_in(state, current)
    return merged(scores_in(state, current), scores_in(state, previous))
