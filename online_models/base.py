"""The one interface every recommender implements.

A model never talks to Redis. It says which records it needs (:data:`Read` tuples), gets
them back in a mapping, and returns typed writes. The worker fetches reads for a whole
batch in one pipeline and applies the writes in one script call; the API fetches a
query's reads in a fixed number of round trips; the evaluator runs the very same code on
an in-process :class:`~online_models.memory.MemoryStore`.

Reads are ``(op, key, n)``:

- ``("get", key, 0)``: a string value (bytes) or None;
- ``("ztop", key, n)``: the ``n`` highest members of a sorted set, ``[(member, score)]``;
- ``("hgetall", key, 0)``: a hash as ``{field: value}`` (str keys and values).
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar, TypeVar

from currents import keys
from currents.writes import Write
from online_models.decay import PREVIOUS_GENERATION_SCALE

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


@dataclass(frozen=True, slots=True)
class Scored:
    """A model's score for an item and why. ``reason`` may hold ``{item}``, filled with the
    ``source`` item's title (or id) when the answer is explained to a person."""

    score: float
    reason: str
    source: str | None = None

    def explain(self, names: Mapping[str, str] | None = None) -> str:
        if self.source is None:
            return self.reason
        return self.reason.format(item=(names or {}).get(self.source, self.source))


class OnlineModel(ABC):
    """Base class of every recommender. Subclasses set ``name`` and implement ``learn``;
    they generate candidates, score given items, or both."""

    name: ClassVar[str]

    # --- learning (worker, evaluator) ----------------------------------------------------
    def learn_reads(self, batch: Sequence[Interaction]) -> list[Read]:
        """Records :meth:`learn` needs for this batch."""
        return []

    @abstractmethod
    def learn(self, batch: Sequence[Interaction], state: State) -> list[Write]:
        """Learn from a batch in order; return the writes that persist what changed."""

    # --- serving (API, evaluator) --------------------------------------------------------
    def candidate_reads(self, query: Query) -> list[Read]:
        return []

    def candidates(self, query: Query, state: State) -> dict[str, Scored]:
        """A bounded set of items this model proposes, with scores and reasons."""
        return {}

    def item_reads(self, query: Query, items: Sequence[str]) -> list[Read]:
        return []

    def score(self, query: Query, items: Sequence[str], state: State) -> dict[str, float]:
        """Scores for given candidates; defaults to the model's own candidate scores."""
        own = self.candidates(query, state)
        return {item: own[item].score for item in items if item in own}


def normalise(scores: Mapping[str, float]) -> dict[str, float]:
    """Divide by the largest positive score (so each model's scores are in (0, 1])."""
    top = max(scores.values(), default=0.0)
    if top <= 0:
        return {}
    return {item: value / top for item, value in scores.items() if value > 0}


def merge_generations(
    current: Sequence[tuple[str, float]], previous: Sequence[tuple[str, float]], scale: float
) -> dict[str, float]:
    merged = dict(current)
    for member, score in previous:
        merged[member] = merged.get(member, 0.0) + score * scale
    return merged


GenerationReads = tuple[Read, Read]


def generation_reads(key_of: Callable[[int], str], generation: int, n: int) -> GenerationReads:
    """The top ``n`` of a decayed sorted set in the current and the previous generation."""
    return ztop(key_of(generation), n), ztop(key_of(generation - 1), n)


def read_generations(state: State, reads: GenerationReads) -> dict[str, float]:
    """Merge what :func:`generation_reads` fetched into current-generation scores."""
    current, previous = reads
    return merge_generations(
        state.get(current, []), state.get(previous, []), PREVIOUS_GENERATION_SCALE
    )


def normalised_generations(state: State, reads: GenerationReads) -> dict[str, float]:
    """:func:`read_generations`, normalised (derived once per pair of replies when the
    state carries a memo: see :func:`derived`)."""
    return derived(state, "normalised", reads, lambda: normalise(read_generations(state, reads)))


T = TypeVar("T")


def derived(state: State, kind: str, reads: tuple[Read, ...], compute: Callable[[], T]) -> T:
    """``compute()``: a value that depends only on the replies to ``reads``, taken from the
    state's :class:`DerivedMemo` when it carries one (the API's) and those replies are the
    same objects as last time. The value is shared: callers must not mutate it."""
    memo: DerivedMemo | None = getattr(state, "memo", None)
    if memo is None:
        return compute()
    return memo.derive(state, kind, reads, compute)


class DerivedMemo:
    """Values computed from replies, each kept while its replies are the same objects.

    The API's read cache (serving/cache.py) hands out one reply object per read until it
    refetches that read, and request after request merges and normalises the same hot
    neighbour lists and trending scopes. An entry holds on to its replies, so no other
    object can take their identity while it is compared; a refetched reply is a new
    object, so it misses. Replies are never mutated, so a hit equals recomputing.

    >>> memo = DerivedMemo()
    >>> pair = (ztop("now", 2), ztop("before", 2))
    >>> state = MemoState({pair[0]: [("a", 2.0), ("b", 1.0)], pair[1]: []}, memo)
    >>> first = normalised_generations(state, pair)
    >>> first, normalised_generations(state, pair) is first
    ({'a': 1.0, 'b': 0.5}, True)
    >>> state[pair[0]] = [("a", 2.0), ("b", 1.0)]   # refetched: a new reply object
    >>> normalised_generations(state, pair) is first
    False
    """

    def __init__(self, max_entries: int = 50_000) -> None:
        self.max_entries = max_entries
        self._entries: dict[tuple[str, tuple[Read, ...]], tuple[list[Any], Any]] = {}

    def derive(
        self, state: State, kind: str, reads: tuple[Read, ...], compute: Callable[[], T]
    ) -> T:
        replies = [state.get(read) for read in reads]
        entry = self._entries.get((kind, reads))
        if entry is not None and all(map(operator.is_, entry[0], replies)):
            value: T = entry[1]
            return value
        value = compute()
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[kind, reads] = (replies, value)
        return value


class MemoState(dict[Read, Any]):
    """A query's replies, with the :class:`DerivedMemo` that models derive through."""

    __slots__ = ("memo",)

    def __init__(self, replies: Mapping[Read, Any], memo: DerivedMemo) -> None:
        super().__init__(replies)
        self.memo = memo
