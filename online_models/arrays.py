"""The arrays ranking runs on: item codes, decoded sorted sets, and a catalog table.

Ranking one shopper touches a few thousand (item, score) pairs: the neighbour lists of
their history, trending scopes, the factors and attributes of a few hundred pooled
items. As Python objects that is milliseconds; as numpy arrays indexed by an integer
code per item it is a few dozen vector operations. This module is that representation
and nothing else: the store layer (Redis reads, the API's cache, the evaluator's
in-memory store) decodes replies into it once per reply, through :func:`decode`, and
the models' serving code and the ranking pipeline (``online_models/ranking.py``) read
it.

>>> catalog = Catalog()
>>> replies = decode({("ztop", "k", 3): [("a", 4.0), ("b", 1.0)]}, catalog)
>>> scores = replies[("ztop", "k", 3)]
>>> catalog.items.names_of(scores.codes), scores.normalised.tolist()
(['a', 'b'], [1.0, 0.25])
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from currents import keys
from online_models import kernels
from online_models.decay import PREVIOUS_GENERATION_SCALE

Read = tuple[str, str, int]
Codes = np.ndarray  # int64 item codes
NO_CODE = -1


class Vocabulary:
    """Strings to dense integer codes (0, 1, 2… in order of first sight), and back.

    Codes live as long as the process: item ids are few (a catalog's tens of thousands)
    and a code must mean the same item in every array built from it."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}
        self.names: list[str] = []
        # Every name in id order, and each code's place in it (for names[:len(_ranks)]).
        self._sorted: list[str] = []
        self._ranks = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.names)

    def code(self, name: str) -> int:
        found = self._codes.get(name)
        if found is None:
            found = self._codes[name] = len(self.names)
            self.names.append(name)
        return found

    def find(self, name: str) -> int:
        """The name's code, or :data:`NO_CODE` if it was never seen."""
        return self._codes.get(name, NO_CODE)

    def codes(self, names: Iterable[str]) -> Codes:
        # A slate's hundred lookups on every request: a dict.get list comprehension,
        # new names handed codes only when there are any.
        names = names if isinstance(names, list) else list(names)
        get = self._codes.get
        found = [get(name, NO_CODE) for name in names]
        if NO_CODE in found:
            code = self.code
            found = [code(name) for name in names]
        return np.array(found, np.int64)

    def ranks(self) -> Codes:
        """Each code's place in the names' sorted order: ties between items are broken by
        it, so that a choice never depends on array order.

        Names handed codes since the last call are merged in: the old names' places
        shift by how many new names sort before them, an O(n) step however few are new.

        >>> v = Vocabulary(); _ = v.codes(["b", "d"]); v.ranks().tolist()
        [0, 1]
        >>> _ = v.codes(["c", "a"]); v.ranks().tolist()
        [1, 3, 2, 0]
        """
        done = len(self._ranks)
        if done == len(self.names):
            return self._ranks
        new = sorted(self.names[done:])
        at = np.array([bisect.bisect_left(self._sorted, name) for name in new], np.int64)
        shifted = self._ranks + np.searchsorted(at, self._ranks, side="right")
        # The j-th new name sorts after j new names and the old names before ``at[j]``.
        places = dict(zip(new, (at + np.arange(len(new))).tolist(), strict=True))
        fresh = np.array([places[name] for name in self.names[done:]], np.int64)
        self._ranks = np.concatenate([shifted, fresh])
        self._sorted = sorted(self._sorted + new)
        return self._ranks

    def names_of(self, codes: Codes | Sequence[int]) -> list[str]:
        names = self.names
        return [names[c] for c in (codes.tolist() if isinstance(codes, np.ndarray) else codes)]


@dataclass(frozen=True, slots=True)
class Scores:
    """A decoded sorted-set top: item codes, their scores, and the scores over their
    maximum (what every model blends: a long list must not drown a short one)."""

    codes: Codes
    values: np.ndarray
    normalised: np.ndarray
    # len(codes), kept as a field: a ranking asks dozens of lists for it.
    size: int

    @classmethod
    def of(cls, codes: Codes, values: np.ndarray) -> Scores:
        keep = values > 0
        if not keep.all():
            codes, values = codes[keep], values[keep]
        top = values.max() if len(values) else 1.0
        return cls(codes, values, values / top, len(codes))

    def __len__(self) -> int:
        return self.size


EMPTY = Scores(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), 0)


def merged(current: Scores, previous: Scores) -> Scores:
    """A decayed sorted set's current and previous generation as one (the previous one
    scaled down, see online_models/decay.py). Nearly always the previous generation is
    empty, and the current one is returned as it is."""
    if not len(previous):
        return current
    if not len(current):
        return Scores.of(previous.codes, previous.values * PREVIOUS_GENERATION_SCALE)
    codes = np.concatenate([current.codes, previous.codes])
    values = np.concatenate([current.values, previous.values * PREVIOUS_GENERATION_SCALE])
    unique, inverse = np.unique(codes, return_inverse=True)
    return Scores.of(unique, np.bincount(inverse, values))


class Catalog:
    """Item codes and, per code, what ranking needs of the item: its attributes (content
    scores), stock, its factor vector (MF), its catalog record (titles, filters, rules).

    Filled by :func:`decode` from the replies the store fetched; a row holds what the
    latest fetch said. Arrays grow by doubling as codes are handed out."""

    def __init__(self, factors: int = 0) -> None:
        self.items = Vocabulary()
        self.categories = Vocabulary()
        self.brands = Vocabulary()
        self.factor_size = factors
        self._capacity = 0
        self.category = np.zeros(0, np.int64)
        self.brand = np.zeros(0, np.int64)
        self.in_stock = np.zeros(0, bool)
        self.factors = np.zeros((0, factors))
        self.has_factors = np.zeros(0, bool)
        self.records: list[dict[str, str] | None] = []
        self._scratch = kernels.Scratch()

    def __len__(self) -> int:
        return len(self.items)

    def scratch(self) -> kernels.Scratch:
        """The ranking kernels' work arrays, as long as every code handed out."""
        self._scratch.fit(len(self.items))
        return self._scratch

    def code(self, item: str) -> int:
        code = self.items.code(item)
        if code >= self._capacity:
            self._grow(code + 1)
        return code

    def codes(self, items: Iterable[str]) -> Codes:
        codes = self.items.codes(items)
        if len(self.items) > self._capacity:
            self._grow(len(self.items))
        return codes

    def _grow(self, needed: int) -> None:
        capacity = max(needed, 2 * self._capacity, 1024)
        extra = capacity - self._capacity

        def extend(array: np.ndarray, fill: Any) -> np.ndarray:
            grown = np.full((extra, *array.shape[1:]), fill, array.dtype)
            return np.concatenate([array, grown])

        self.category = extend(self.category, NO_CODE)
        self.brand = extend(self.brand, NO_CODE)
        self.in_stock = extend(self.in_stock, True)  # unknown items pass the stock filter
        self.factors = extend(self.factors, 0.0)
        self.has_factors = extend(self.has_factors, False)
        self.records.extend([None] * extra)
        self._capacity = capacity

    # --- rows, as the store decodes replies ----------------------------------------------
    def set_record(self, item: str, record: Mapping[str, str] | None) -> None:
        code = self.code(item)
        record = dict(record) if record else None
        self.records[code] = record
        record = record or {}
        category, brand = record.get("category"), record.get("brand")
        self.category[code] = self.categories.code(category) if category else NO_CODE
        self.brand[code] = self.brands.code(brand) if brand else NO_CODE
        self.in_stock[code] = record.get("in_stock") != "0"

    def set_factors(self, item: str, blob: bytes | None) -> None:
        code = self.code(item)
        if blob is not None and len(blob) == 4 * self.factor_size:
            self.factors[code] = np.frombuffer(blob, dtype="<f4")
            self.has_factors[code] = True
        else:
            self.has_factors[code] = False

    # --- reading -----------------------------------------------------------------------------
    def record(self, code: int) -> dict[str, str]:
        if not 0 <= code < len(self.records):
            return {}
        return self.records[code] or {}

    def title(self, code: int) -> str:
        """The item's title, else its id ("" for a code outside the table)."""
        if not 0 <= code < len(self.items):
            return ""
        return self.record(code).get("title") or self.items.names[code]


class CatalogRecords:
    """Item records by item id, as an answer reads them (``online_models/selection.py``):
    the record, the title, and the stock of a ranking's head from the table's column."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def record(self, item: str) -> Mapping[str, str]:
        return self.catalog.record(self.catalog.items.find(item))

    def title(self, item: str) -> str:
        return self.catalog.title(self.catalog.items.find(item))

    def in_stock(self, codes: list[int]) -> list[bool]:
        """Per code (from :meth:`Catalog.codes`: inside the table), whether the item may
        be served: not marked out of stock."""
        return self.catalog.in_stock[codes].tolist()


def decode(replies: Mapping[Read, Any], catalog: Catalog) -> dict[Read, Any]:
    """Replies as ranking reads them: sorted-set tops become :class:`Scores`; item
    records and item factors also fill their rows of ``catalog``; the rest is as fetched.

    The one place replies turn into arrays: the worker, the API and the evaluator all
    decode through it."""
    decoded: dict[Read, Any] = {}
    codes = catalog.codes
    for read, reply in replies.items():
        op, key, _ = read
        if op == "ztop":
            if reply:
                members, values = zip(*reply, strict=True)
                reply = Scores.of(codes(members), np.fromiter(values, float, len(values)))
            else:
                reply = EMPTY
        elif op == "hgetall" and keys.is_item_record(key):
            catalog.set_record(keys.item_of_key(key), reply)
        elif op == "get" and keys.is_item_factors(key):
            catalog.set_factors(keys.item_of_key(key), reply)
        decoded[read] = reply
    return decoded


def scores_in(state: Mapping[Read, Any], read: Read) -> Scores:
    found = state.get(read)
    return found if isinstance(found, Scores) else EMPTY
