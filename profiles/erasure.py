"""What erasing a shopper writes, from the data map (``currents/keys.py`` ``DATA_MAP``):
the deletes of their tagged keys and the removals of their id from shared structures.
Both erasure paths apply it, each with what it knows: the API (every segment and campaign
defined, every item's watchers), and the worker's second pass (the shopper's own state,
for what a batch in flight may have written after the API's pass).

>>> scope = ErasureScope(segments=("vip",), timers=("cart",), partitions=2, items=("a",))
>>> sorted(type(w).__name__ for w in erasure_writes("u1", scope))  # doctest: +NORMALIZE_WHITESPACE
['Delete', 'Delete', 'Delete', 'Delete', 'SetRemove', 'SetRemove', 'ZRemove', 'ZRemove',
 'ZRemove', 'ZRemove']
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from currents import keys
from currents.writes import Delete, SetRemove, Write, ZRemove


@dataclass(frozen=True)
class ErasureScope:
    """The instances of the shared structures that may hold the shopper."""

    segments: Collection[str] = ()
    timers: Collection[str] = ()  # timer names: campaign ids, quiet-hours, price-drop
    partitions: int = 1
    items: Collection[str] = ()  # items whose watchers may hold them


# One way to erase each structure of the data map that holds user ids.
TAGGED: dict[str, Callable[[str], str]] = {
    "user_profile": keys.user_profile,
    "user_slate": keys.user_slate,
    "user_factors": keys.user_factors,
    "user_campaign_sends": keys.user_campaign_sends,
}
MEMBERS: dict[str, Callable[[str, ErasureScope], list[Write]]] = {
    "sweep_schedule": lambda user, _: [ZRemove(keys.sweep_schedule(), (user,))],
    "slate_refresh": lambda user, scope: [
        SetRemove(keys.slate_refresh(p), (user,)) for p in range(scope.partitions)
    ],
    "segment_members": lambda user, scope: [
        ZRemove(keys.segment_members(s), (user,)) for s in sorted(scope.segments)
    ],
    "campaign_timers": lambda user, scope: (
        [
            ZRemove(
                keys.campaign_timers(),
                tuple(keys.timer_member(t, user) for t in sorted(scope.timers)),
            )
        ]
        if scope.timers
        else []
    ),
    "item_watchers": lambda user, scope: [
        ZRemove(keys.item_watchers(i), (user,)) for i in sorted(scope.items)
    ],
}


def erasure_writes(user_id: str, scope: ErasureScope) -> list[Write]:
    """Every write that removes ``user_id`` from the structures the data map lists."""
    writes: list[Write] = [Delete(key(user_id)) for key in TAGGED.values()]
    for remove in MEMBERS.values():
        writes += remove(user_id, scope)
    return writes
