"""A per-process cache of shared model reads for the recommendation path.

A recommendation reads a few hundred keys, nearly all of them shared by every shopper:
item records, neighbour lists, item factors, trending scopes. redis-py spends tens of
microseconds of this process's CPU on each command it packs and parses, so those reads,
not Redis, cap how many requests one API process serves (docs/performance.md). This
cache keeps each shared read's reply for ``ttl_s`` (default 0.25 s, well inside the
500 ms freshness budget), so a hot item costs one Redis read per process per quarter
second instead of one per request. Per-user keys (``{u:...}``) are never cached: a
shopper's own state is read fresh on every request.

>>> cache = ReadCache(ttl_s=1.0, clock=iter([0.0, 2.0]).__next__)
>>> read = ("hgetall", "{i:a}:item", 0)
>>> cache.store({read: {"price": "1"}}); cache.lookup([read])
({('hgetall', '{i:a}:item', 0): {'price': '1'}}, [])
>>> cache.lookup([read, ("get", "{u:x}:mf", 0)])[1]   # expired; user keys never cached
[('hgetall', '{i:a}:item', 0), ('get', '{u:x}:mf', 0)]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from currents.redis_client import AsyncRedis
from currents.redis_reads import fetch_reads

Read = tuple[str, str, int]
DEFAULT_TTL_S = 0.25
MAX_ENTRIES = 200_000
MAX_COLD_START_ENTRIES = 10_000


def cacheable(read: Read) -> bool:
    """Shared reads only: a shopper's own keys carry the ``{u:`` hash tag."""
    return not read[1].startswith("{u:")


class ReadCache:
    def __init__(
        self, ttl_s: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: dict[Read, tuple[float, Any]] = {}
        self._now = 0.0

    def lookup(self, reads: Iterable[Read]) -> tuple[dict[Read, Any], list[Read]]:
        """Fresh cached replies, and the reads that must go to Redis."""
        now = self._now = self.clock()
        hits: dict[Read, Any] = {}
        misses: list[Read] = []
        entries = self._entries
        for read in reads:
            entry = entries.get(read)
            if entry is not None and entry[0] > now:
                hits[read] = entry[1]
            else:
                misses.append(read)
        return hits, misses

    def store(self, replies: dict[Read, Any]) -> None:
        if len(self._entries) > MAX_ENTRIES:
            self._entries.clear()
        expires = self._now + self.ttl_s
        for read, reply in replies.items():
            if cacheable(read):
                self._entries[read] = (expires, reply)

    async def fetch(self, redis: AsyncRedis, reads: Iterable[Read]) -> dict[Read, Any]:
        """Like :func:`currents.redis_reads.fetch_reads`, serving shared reads from the
        cache when fresh; the misses still go in one pipelined round trip."""
        hits, misses = self.lookup(reads)
        if misses:
            fetched = await fetch_reads(redis, misses)
            self.store(fetched)
            hits.update(fetched)
        return hits


class ColdStartCache:
    """Responses for shoppers Currents knows nothing about, per process for ``ttl_s``.

    Every stranger asking the same question (same ``n``, filters, context item, experiment
    variant and rules) gets the same items: nothing about them enters the ranking. Most
    storefront traffic is such first visits, so their answer is worked out once per
    ``ttl_s`` (the same staleness as the shared reads above) instead of per request.

    >>> cache = ColdStartCache(ttl_s=1.0, clock=iter([0.0, 0.5, 2.0]).__next__)
    >>> cache.store(("n", 10), ["a", "b"]); cache.lookup(("n", 10))
    ['a', 'b']
    >>> cache.lookup(("n", 10)) is None   # expired
    True
    """

    def __init__(
        self, ttl_s: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: dict[Hashable, tuple[float, Any]] = {}

    def lookup(self, key: Hashable) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self._entries[key]
            return None
        return entry[1]

    def store(self, key: Hashable, value: Any) -> None:
        if len(self._entries) >= MAX_COLD_START_ENTRIES:
            self._entries.clear()
        self._entries[key] = (self.clock() + self.ttl_s, value)
