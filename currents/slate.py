"""A slate: one shopper's ranking, materialised by the worker and read by the API.

The encoding is the one description of a slate's bytes (docs/redis-layout.md): a small
JSON head (item ids, the tables of model names, reason texts and source items, freshness)
followed by fixed-width columns (score float32, model and reason indexes, source index,
flags), zlib-compressed. 100 items take about 1.2 kB; decoding one costs tens of
microseconds, so the API's request path never ranks.

>>> slate = Slate(["b", "a"], [0.9, 0.5], ["cooccurrence", "trending"],
...               ["bought together with ", "popular now"], ["x", None], [True, False],
...               built_ms=5, as_of_event="e1", as_of_ms=4)
>>> back = decode_slate(encode_slate(slate))
>>> back.items, back.sources, back.personal, back.as_of_event
(['b', 'a'], ['x', None], [True, False], 'e1')
>>> [round(s, 6) for s in back.scores]
[0.9, 0.5]
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

VERSION = 1
NO_SOURCE = 0xFFFF
PERSONAL = 1
_HEAD = struct.Struct("<BI")  # version, head length


@dataclass
class Slate:
    items: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    # An item's reason is ``reasons[i]`` followed by the title of ``sources[i]`` (when
    # set): titles are the catalog's, looked up when served.
    reasons: list[str] = field(default_factory=list)
    sources: list[str | None] = field(default_factory=list)
    personal: list[bool] = field(default_factory=list)
    built_ms: int = 0
    # The newest event of the shopper the slate reflects.
    as_of_event: str | None = None
    as_of_ms: int | None = None
    variant: str | None = None
    # The ranking held more items than the slate keeps.
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.items)


def _table(values: list[str]) -> tuple[list[str], list[int]]:
    index: dict[str, int] = {}
    codes = [index.setdefault(value, len(index)) for value in values]
    return list(index), codes


def encode_slate(slate: Slate) -> bytes:
    models, model_codes = _table(slate.models)
    reasons, reason_codes = _table(slate.reasons)
    present = [s for s in slate.sources if s is not None]
    sources, _ = _table(present)
    position = {source: i for i, source in enumerate(sources)}
    source_codes = [NO_SOURCE if s is None else position[s] for s in slate.sources]
    head = orjson.dumps(
        {
            "i": slate.items,
            "m": models,
            "r": reasons,
            "s": sources,
            "b": slate.built_ms,
            "e": slate.as_of_event,
            "t": slate.as_of_ms,
            "v": slate.variant,
            "x": slate.truncated,
        }
    )
    body = b"".join(
        (
            _HEAD.pack(VERSION, len(head)),
            head,
            np.asarray(slate.scores, np.float32).tobytes(),
            np.asarray(model_codes, np.uint8).tobytes(),
            np.asarray(reason_codes, np.uint16).tobytes(),
            np.asarray(source_codes, np.uint16).tobytes(),
            np.asarray(slate.personal, np.uint8).tobytes(),
        )
    )
    return zlib.compress(body, 6)


def decode_slate(raw: bytes) -> Slate:
    """The slate in ``raw``; ``ValueError`` when it is not one this version wrote."""
    return read_slate(raw).head(None)


class SlateRead:
    """A slate as a request reads it: the head (ids, freshness, variant) decoded at
    once, the columns turned into lists only for the first ``limit`` items asked for
    (a default request looks at a few dozen of a hundred)."""

    def __init__(self, head: dict[str, Any], columns: tuple[np.ndarray, ...]) -> None:
        self.items: list[str] = head["i"]
        self.built_ms: int = head["b"]
        self.as_of_event: str | None = head["e"]
        self.as_of_ms: int | None = head["t"]
        self.variant: str | None = head["v"]
        self.truncated: bool = head["x"]
        self._tables = head["m"], head["r"], head["s"]
        self._columns = columns
        self._heads: dict[int, Slate] = {}

    def __len__(self) -> int:
        return len(self.items)

    def head(self, limit: int | None) -> Slate:
        """The first ``limit`` items (all of them for None) as a :class:`Slate`, marked
        truncated when the slate holds more."""
        n = len(self.items) if limit is None else min(limit, len(self.items))
        found = self._heads.get(n)
        if found is not None:
            return found
        scores, model_codes, reason_codes, source_codes, flags = (c[:n] for c in self._columns)
        models, reasons, sources = self._tables
        found = self._heads[n] = Slate(
            items=self.items[:n],
            scores=scores.astype(np.float64).tolist(),
            models=[models[c] for c in model_codes.tolist()],
            reasons=[reasons[c] for c in reason_codes.tolist()],
            sources=[None if c == NO_SOURCE else sources[c] for c in source_codes.tolist()],
            personal=(flags & PERSONAL).astype(bool).tolist(),
            built_ms=self.built_ms,
            as_of_event=self.as_of_event,
            as_of_ms=self.as_of_ms,
            variant=self.variant,
            truncated=self.truncated or n < len(self.items),
        )
        return found


def read_slate(raw: bytes) -> SlateRead:
    """``raw`` opened for reading; ``ValueError`` when it is not a slate this version
    wrote."""
    try:
        body = zlib.decompress(raw)
        version, length = _HEAD.unpack_from(body)
    except (zlib.error, struct.error) as error:
        raise ValueError("not a slate") from error
    if version != VERSION:
        raise ValueError(f"slate version {version}")
    start = _HEAD.size
    head = orjson.loads(body[start : start + length])
    n = len(head["i"])
    at = start + length
    columns = []
    for dtype in (np.float32, np.uint8, np.uint16, np.uint16, np.uint8):
        column = np.frombuffer(body, dtype, n, at)
        columns.append(column)
        at += column.nbytes
    return SlateRead(head, tuple(columns))
