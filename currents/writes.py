"""Typed Redis writes. Stream and model logic return these; a store applies them.

Logic that returns writes instead of calling Redis can be tested without servers, and
lets the sink apply a whole batch in one pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: bytes
    ttl_s: int | None = None


@dataclass(frozen=True, slots=True)
class GuardedPut:
    """A ``Put`` that lands only while ``guard`` exists: a derived value (a slate) must
    not outlive, or resurrect, the state it was derived from (an erased profile)."""

    key: str
    value: bytes
    ttl_s: int
    guard: str


@dataclass(frozen=True, slots=True)
class HashSet:
    key: str
    mapping: dict[str, str | bytes | int | float]


@dataclass(frozen=True, slots=True)
class HashIncr:
    key: str
    field: str
    amount: int


@dataclass(frozen=True, slots=True)
class ZIncr:
    key: str
    member: str
    amount: float


@dataclass(frozen=True, slots=True)
class ZAdd:
    key: str
    mapping: dict[str, float]


@dataclass(frozen=True, slots=True)
class ZRemove:
    key: str
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ZKeepTop:
    """Keep only the ``keep`` highest-scored members of a sorted set."""

    key: str
    keep: int


@dataclass(frozen=True, slots=True)
class SetAdd:
    key: str
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SetRemove:
    key: str
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Delete:
    key: str


Write = (
    Put
    | GuardedPut
    | HashSet
    | HashIncr
    | ZIncr
    | ZAdd
    | ZRemove
    | ZKeepTop
    | SetAdd
    | SetRemove
    | Delete
)


def coalesce(writes: list[Write]) -> list[Write]:
    """Sum repeated increments of the same key and member, keeping first-seen order.

    >>> coalesce([ZIncr("k", "a", 1.0), HashIncr("h", "f", 1), ZIncr("k", "a", 2.0)])
    [ZIncr(key='k', member='a', amount=3.0), HashIncr(key='h', field='f', amount=1)]
    """
    merged: list[Write] = []
    position: dict[tuple[bool, str, str], int] = {}  # (is a ZIncr, key, member) -> index
    for write in writes:
        if isinstance(write, ZIncr):
            slot = (True, write.key, write.member)
        elif isinstance(write, HashIncr):
            slot = (False, write.key, write.field)
        else:
            merged.append(write)
            continue
        at = position.get(slot)
        if at is None:
            position[slot] = len(merged)
            merged.append(write)
            continue
        previous = merged[at]
        if isinstance(write, ZIncr) and isinstance(previous, ZIncr):
            merged[at] = ZIncr(write.key, write.member, previous.amount + write.amount)
        elif isinstance(write, HashIncr) and isinstance(previous, HashIncr):
            merged[at] = HashIncr(write.key, write.field, previous.amount + write.amount)
    return merged
