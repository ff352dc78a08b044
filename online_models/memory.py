"""An in-process store with Redis semantics for the reads and writes models use.

The evaluator replays logs through the models on this store, so offline numbers come
from exactly the code the worker and the API run. The conformance suite checks that it
and a real Redis hold the same state after the same writes.

>>> store = MemoryStore()
>>> store.apply([ZIncr("z", "a", 2.0), ZIncr("z", "b", 3.0), ZKeepTop("z", 1)])
>>> store.fetch([("ztop", "z", 5)])[("ztop", "z", 5)]
[('b', 3.0)]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from currents.text import as_text
from currents.writes import (
    Delete,
    GuardedPut,
    HashIncr,
    HashSet,
    Put,
    SetAdd,
    SetRemove,
    Write,
    ZAdd,
    ZIncr,
    ZKeepTop,
    ZRemove,
)
from online_models.arrays import Catalog, decode
from online_models.base import Read


class MemoryStore:
    def __init__(self) -> None:
        self.strings: dict[str, bytes] = {}
        self.hashes: dict[str, dict[str, str]] = {}
        self.zsets: dict[str, dict[str, float]] = {}
        self.sets: dict[str, set[str]] = {}

    def fetch(self, reads: Iterable[Read]) -> dict[Read, Any]:
        return {read: self.read(read) for read in reads}

    def decoded(self, reads: Iterable[Read], catalog: Catalog) -> dict[Read, Any]:
        """:meth:`fetch`, decoded as ranking reads it (``arrays.decode``)."""
        return decode(self.fetch(reads), catalog)

    def read(self, read: Read) -> Any:
        op, key, n = read
        if op == "get":
            return self.strings.get(key)
        if op == "ztop":
            members = self.zsets.get(key, {})
            ranked = sorted(members.items(), key=lambda kv: (-kv[1], _desc(kv[0])))
            return ranked[:n]
        if op == "hgetall":
            return dict(self.hashes.get(key, {}))
        raise ValueError(f"unknown read {read!r}")

    def apply(self, writes: Sequence[Write]) -> None:
        for write in writes:
            match write:
                case ZIncr(key, member, amount):
                    zset = self.zsets.setdefault(key, {})
                    zset[member] = zset.get(member, 0.0) + amount
                case ZAdd(key, mapping):
                    self.zsets.setdefault(key, {}).update(mapping)
                case ZRemove(key, members):
                    for member in members:
                        self.zsets.get(key, {}).pop(member, None)
                case ZKeepTop(key, keep):
                    zset = self.zsets.get(key, {})
                    if len(zset) > keep:
                        ranked = sorted(zset.items(), key=lambda kv: (kv[1], kv[0]))
                        for member, _ in ranked[: len(zset) - keep]:
                            del zset[member]
                case Put(key, value, _):
                    self.strings[key] = value
                case GuardedPut(key, value, _, guard):
                    if guard in self.strings or guard in self.hashes:
                        self.strings[key] = value
                case HashSet(key, mapping):
                    self.hashes.setdefault(key, {}).update(
                        {f: as_text(v) for f, v in mapping.items()}
                    )
                case HashIncr(key, field, amount):
                    table = self.hashes.setdefault(key, {})
                    table[field] = str(int(table.get(field, "0")) + amount)
                case SetAdd(key, members):
                    self.sets.setdefault(key, set()).update(members)
                case SetRemove(key, members):
                    self.sets.get(key, set()).difference_update(members)
                case Delete(key):
                    self.strings.pop(key, None)
                    self.hashes.pop(key, None)
                    self.zsets.pop(key, None)
                    self.sets.pop(key, None)
                case _:
                    raise TypeError(f"unknown write {write!r}")


class _Descending:
    """Sort key that orders members descending, like ZREVRANGE on equal scores."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __lt__(self, other: _Descending) -> bool:
        return self.value > other.value


def _desc(value: str) -> _Descending:
    return _Descending(value)
