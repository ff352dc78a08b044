"""A per-process cache of shared model reads for the recommendation path.

A recommendation reads a few hundred keys, nearly all of them shared by every shopper:
item records, neighbour lists, item factors, trending scopes. redis-py spends tens of
microseconds of this process's CPU on each command it packs and parses, so those reads,
not Redis, cap how many requests one API process serves (docs/performance.md). This
cache keeps each shared read's reply for ``ttl_s`` (default 0.25 s, well inside the
500 ms freshness budget), so a hot item costs one Redis read per process per quarter
second instead of one per request. Per-user keys (``{u:...}``) are never cached: a
shopper's own state is read fresh on every request.

Item records (``{i:...}:item``: stock, price, category) change only through catalog
events. While the process is subscribed to the worker's announcements of those changes
(``serving/catalog_cache.py``) it keeps records for 15-30 s (``catalog_ttl_s``, spread) and forgets
each one as soon as its change is announced; without a live subscription they expire
like every other shared read.

>>> cache = ReadCache(ttl_s=1.0, clock=iter([0.0, 2.0]).__next__)
>>> read = ("hgetall", "{i:a}:item", 0)
>>> cache.store({read: {"price": "1"}}); cache.lookup([read])
({('hgetall', '{i:a}:item', 0): {'price': '1'}}, [])
>>> cache.lookup([read, ("get", "{u:x}:mf", 0)])[1]   # expired; user keys never cached
[('hgetall', '{i:a}:item', 0), ('get', '{u:x}:mf', 0)]

A record read while its change was being announced is not kept:

>>> cache = ReadCache(clock=lambda: 0.0); cache.catalog_live = True
>>> since = cache.changes              # a fetch begins...
>>> cache.catalog_changed(["a"])       # ...the worker rewrites item a meanwhile
>>> cache.store({read: {"in_stock": "1"}}, since); cache.lookup([read])[1]
[('hgetall', '{i:a}:item', 0)]
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from typing import Any

import numpy as np

from currents import keys
from currents.redis_client import AsyncRedis
from currents.redis_reads import fetch_reads
from online_models.arrays import Catalog, CatalogRecords, decode
from online_models.base import FACTORS, RECORD, ROW_READS, hgetall, row_reads

Read = tuple[str, str, int]
DEFAULT_TTL_S = 0.25
# Item records change only through catalog events, which the worker announces.
CATALOG_TTL_S = 30.0
MAX_ENTRIES = 200_000
MAX_COLD_START_ENTRIES = 10_000


def cacheable(read: Read) -> bool:
    """Shared reads only: a shopper's own keys carry the ``{u:`` hash tag."""
    return not read[1].startswith("{u:")


class ReadCache:
    """Replies are kept decoded (``online_models/arrays.py``): a hit costs no decoding,
    and item records and factors fill the rows of ``catalog`` as they are fetched."""

    def __init__(
        self,
        catalog: Catalog | None = None,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        catalog_ttl_s: float = CATALOG_TTL_S,
    ) -> None:
        self.catalog = catalog if catalog is not None else Catalog()
        self.ttl_s = ttl_s
        self.catalog_ttl_s = catalog_ttl_s
        self.clock = clock
        # True while this process hears every catalog change (serving/catalog_cache.py);
        # only then may item records outlive ``ttl_s``.
        self.catalog_live = False
        self._entries: dict[Read, tuple[float, Any]] = {}
        self._now = 0.0
        # Catalog invalidations so far; a fetch that began before an item's latest one
        # must not cache the (possibly older) record it read.
        self._changes = 0
        self._changed_at: dict[Read, int] = {}
        self._dropped_at = 0
        # Per catalog row and item code: until when ``catalog`` holds a fresh copy (a
        # slate or a pool is checked with one vector comparison, not a lookup per item).
        self._until = {row: np.zeros(0) for row in ROW_READS}

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

    def store(self, replies: dict[Read, Any], since: int | None = None) -> None:
        """Cache ``replies``; ``since`` is :attr:`changes` when their fetch began."""
        if len(self._entries) > MAX_ENTRIES:
            self._entries.clear()
        expires = self._now + self.ttl_s
        catalog_ttl_s = self.catalog_ttl_s if self.catalog_live else self.ttl_s
        changed_at, dropped_at = self._changed_at, self._dropped_at
        for read, reply in replies.items():
            if not cacheable(read):
                continue
            if is_catalog_record(read):
                if since is not None and (since < dropped_at or changed_at.get(read, -1) >= since):
                    continue  # changed while this fetch was in flight
                # Spread over the second half of the TTL: records read together (a
                # whole catalog at start) would otherwise all expire in the same
                # instant, and every request then would fetch its own stale ones.
                catalog_expires = self._now + catalog_ttl_s * (0.5 + 0.5 * random.random())
                self._entries[read] = (catalog_expires, reply)
                self._fresh_until(
                    RECORD, self.catalog.code(keys.item_of_key(read[1])), catalog_expires
                )
            else:
                self._entries[read] = (expires, reply)
                if read[0] == "get" and keys.is_item_factors(read[1]):
                    self._fresh_until(
                        FACTORS, self.catalog.code(keys.item_of_key(read[1])), expires
                    )

    @property
    def changes(self) -> int:
        return self._changes

    def catalog_changed(self, item_ids: Iterable[str]) -> None:
        """Forget these items' records (a batch just rewrote them)."""
        if len(self._changed_at) > MAX_ENTRIES:
            self.drop_catalog()
            return
        for item_id in item_ids:
            read = hgetall(keys.item_record(item_id))
            self._entries.pop(read, None)
            self._fresh_until(RECORD, self.catalog.items.find(item_id), 0.0)
            self._changed_at[read] = self._changes
        self._changes += 1

    def drop_catalog(self) -> None:
        """Forget every cached item record (changes may have been missed)."""
        self._entries = {r: e for r, e in self._entries.items() if not is_catalog_record(r)}
        self._until[RECORD][:] = 0.0
        self._changed_at.clear()
        self._dropped_at = self._changes = self._changes + 1

    def _fresh_until(self, row: str, code: int, until: float) -> None:
        if code < 0:
            return
        fresh = self._until[row]
        if code >= len(fresh):
            grown = np.zeros(max(code + 1, 2 * len(fresh), 1024))
            grown[: len(fresh)] = fresh
            fresh = self._until[row] = grown
        fresh[code] = until

    def records(self) -> Records:
        """Item records and titles for one request, noting those not fresh."""
        return Records(self.catalog, self._until[RECORD], self.clock())

    def row_reads(self, codes: np.ndarray, rows: Collection[str]) -> list[Read]:
        """The reads that make the catalog rows ``rows`` of ``codes`` fresh: none, in
        the steady state of a process that follows the catalog."""
        now = self._now = self.clock()
        names = self.catalog.items.names
        reads: list[Read] = []
        for row in rows:
            until = self._until[row]
            inside = codes < len(until)
            old = until[codes[inside]] <= now
            if inside.all() and not old.any():
                continue  # the steady state: every row fresh
            stale = np.union1d(codes[~inside], codes[inside][old])
            reads += row_reads([names[code] for code in stale.tolist()], (row,))
        return reads

    async def refresh_rows(
        self, redis: AsyncRedis, codes: np.ndarray, rows: Collection[str]
    ) -> None:
        """Make the catalog rows ``rows`` of ``codes`` fresh, in at most one round trip."""
        stale = self.row_reads(codes, rows)
        if stale:
            await self.fetch(redis, stale)

    async def fetch(
        self, redis: AsyncRedis, reads: Iterable[Read], in_hand: Mapping[Read, Any] | None = None
    ) -> dict[Read, Any]:
        """Like :func:`currents.redis_reads.fetch_reads`, serving shared reads from the
        cache when fresh and ``in_hand`` reads (this request's, read just before) as given;
        the misses still go in one pipelined round trip."""
        hits, misses = self.lookup(reads)
        if in_hand:
            hits.update(decode(in_hand, self.catalog))
            misses = [read for read in misses if read not in in_hand]
        if misses:
            since = self._changes
            fetched = decode(await fetch_reads(redis, misses), self.catalog)
            self.store(fetched, since)
            hits.update(fetched)
        return hits


class Records(CatalogRecords):
    """Item records as one request reads them from the catalog table. A request touches
    a few dozen items; rather than checking every item it might touch before it starts,
    each lookup checks its own rows and notes the items whose record was not fresh
    (:attr:`stale`): the caller fetches those, in one round trip, and asks again, which
    in a process that follows the catalog is rare."""

    def __init__(self, catalog: Catalog, until: np.ndarray, now: float) -> None:
        super().__init__(catalog)
        self._until = until
        self._now = now
        self.stale: list[str] = []

    def _check(self, item: str) -> None:
        code = self.catalog.items.find(item)
        if not 0 <= code < len(self._until) or self._until[code] <= self._now:
            self.stale.append(item)

    def record(self, item: str) -> Mapping[str, str]:
        self._check(item)
        return super().record(item)

    def title(self, item: str) -> str:
        self._check(item)
        return super().title(item)

    def in_stock(self, codes: list[int]) -> list[bool]:
        asked = np.asarray(codes, np.int64)
        inside = asked < len(self._until)
        fresh = np.zeros(len(asked), bool)
        fresh[inside] = self._until[asked[inside]] > self._now
        if not fresh.all():
            names = self.catalog.items.names
            self.stale += [names[c] for c in asked[~fresh].tolist()]
        return super().in_stock(codes)


def is_catalog_record(read: Read) -> bool:
    return read[0] == "hgetall" and read[1].startswith("{i:") and read[1].endswith(":item")


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
