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
    scores = np.frombuffer(body, np.float32, n, at)
    at += 4 * n
    model_codes = np.frombuffer(body, np.uint8, n, at)
    at += n
    reason_codes = np.frombuffer(body, np.uint16, n, at)
    at += 2 * n
    source_codes = np.frombuffer(body, np.uint16, n, at)
    at += 2 * n
    flags = np.frombuffer(body, np.uint8, n, at)
    models, reasons, sources = head["m"], head["r"], head["s"]
    return Slate(
        items=head["i"],
        scores=scores.astype(np.float64).tolist(),
        models=[models[c] for c in model_codes.tolist()],
        reasons=[reasons[c] for c in reason_codes.tolist()],
        sources=[None if c == NO_SOURCE else sources[c] for c in source_codes.tolist()],
        personal=(flags & PERSONAL).astype(bool).tolist(),
        built_ms=head["b"],
        as_of_event=head["e"],
        as_of_ms=head["t"],
        variant=head["v"],
        truncated=head["x"],
    )
