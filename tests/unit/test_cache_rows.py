"""ReadCache.row_reads: which catalog rows a pool must (re)read; none when all are fresh."""

from __future__ import annotations

import numpy as np

from online_models.base import FACTORS, RECORD, item_factors_read, item_record_read
from serving.cache import ReadCache


def _cache(now: list[float]) -> ReadCache:
    return ReadCache(ttl_s=1.0, catalog_ttl_s=30.0, clock=lambda: now[0])


def test_fresh_rows_need_no_read_and_expired_or_unknown_ones_do() -> None:
    now = [0.0]
    cache = _cache(now)
    cache.catalog_live = True
    codes = cache.catalog.codes(["a", "b", "c"])
    assert cache.row_reads(codes, (RECORD, FACTORS)) == [
        item_record_read("a"),
        item_record_read("b"),
        item_record_read("c"),
        item_factors_read("a"),
        item_factors_read("b"),
        item_factors_read("c"),
    ]
    cache.lookup([])  # a fetch begins at `now`
    cache.store({item_record_read(i): {"in_stock": "1"} for i in "ab"})
    cache.store({item_factors_read(i): b"\0" * 4 for i in "abc"})
    assert cache.row_reads(codes, (RECORD,)) == [item_record_read("c")]
    assert cache.row_reads(codes, (FACTORS,)) == []
    now[0] = 2.0  # factors expire after ttl_s, records (followed) after catalog_ttl_s
    assert cache.row_reads(codes, (FACTORS,)) == [item_factors_read(i) for i in "abc"]
    assert cache.row_reads(codes[:2], (RECORD,)) == []
    # a code the freshness vector has never seen
    late = cache.catalog.codes([f"x{i}" for i in range(2000)])[-1:]
    assert cache.row_reads(late, (RECORD,)) == [item_record_read("x1999")]


def test_an_announced_change_makes_the_record_stale() -> None:
    now = [0.0]
    cache = _cache(now)
    cache.catalog_live = True
    codes = cache.catalog.codes(["a", "b"])
    cache.lookup([])
    cache.store({item_record_read(i): {"in_stock": "1"} for i in "ab"})
    assert cache.row_reads(codes, (RECORD,)) == []
    cache.catalog_changed(["b"])
    assert cache.row_reads(codes, (RECORD,)) == [item_record_read("b")]
    cache.drop_catalog()
    assert cache.row_reads(np.asarray(codes), (RECORD,)) == [item_record_read(i) for i in "ab"]
