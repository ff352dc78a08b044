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


Write = Put | HashSet | HashIncr | ZIncr | ZAdd | ZRemove | ZKeepTop | SetAdd | SetRemove | Delete


def coalesce(writes: list[Write]) -> list[Write]:
    """Sum repeated increments of the same key and member, keeping first-seen order.

    >>> coalesce([ZIncr("k", "a", 1.0), HashIncr("h", "f", 1), ZIncr("k", "a", 2.0)])
    [ZIncr(key='k', member='a', amount=3.0), HashIncr(key='h', field='f', amount=1)]
    """
    merged: dict[tuple[str, str, str], Write] = {}
    passthrough: list[tuple[int, Write]] = []
    order: dict[tuple[str, str, str], int] = {}
    for position, write in enumerate(writes):
        if isinstance(write, ZIncr):
            slot = ("z", write.key, write.member)
            previous = merged.get(slot)
            amount = write.amount + (previous.amount if isinstance(previous, ZIncr) else 0.0)
            merged[slot] = ZIncr(write.key, write.member, amount)
        elif isinstance(write, HashIncr):
            slot = ("h", write.key, write.field)
            previous = merged.get(slot)
            count = write.amount + (previous.amount if isinstance(previous, HashIncr) else 0)
            merged[slot] = HashIncr(write.key, write.field, count)
        else:
            passthrough.append((position, write))
            continue
        order.setdefault(slot, position)
    ordered = [(order[slot], write) for slot, write in merged.items()] + passthrough
    return [write for _, write in sorted(ordered, key=lambda pair: pair[0])]
