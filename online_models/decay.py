"""Exponential time decay for additive Redis scores, without rewriting old scores.

An event at time ``t`` adds ``w * 2**((t - start) / half_life)`` to a score, where
``start`` begins the event's *generation*. Growing the new contributions instead of
shrinking the old ones keeps every update a single ZINCRBY. A generation spans
``GENERATION_HALF_LIVES`` half-lives so scores stay far from float overflow; readers
merge the current and the previous generation, scaling the previous one down by
``2**-GENERATION_HALF_LIVES``, so a generation boundary loses nothing.

>>> clock = DecayClock(half_life_ms=1000)
>>> clock.generation(0), clock.weight(1000, 0)
(0, 2.0)
>>> clock.decayed(4.0, ts=0, now=2000)   # two half-lives later
1.0
"""

from __future__ import annotations

from dataclasses import dataclass

GENERATION_HALF_LIVES = 512
PREVIOUS_GENERATION_SCALE = 2.0**-GENERATION_HALF_LIVES


@dataclass(frozen=True, slots=True)
class DecayClock:
    half_life_ms: float

    @property
    def span_ms(self) -> float:
        return self.half_life_ms * GENERATION_HALF_LIVES

    def generation(self, ts_ms: int) -> int:
        return int(ts_ms // self.span_ms)

    def weight(self, ts_ms: int, generation: int) -> float:
        """The growth factor of an event at ``ts_ms`` within ``generation``."""
        return float(2.0 ** ((ts_ms - generation * self.span_ms) / self.half_life_ms))

    def decayed(self, value: float, *, ts: int, now: int) -> float:
        """``value`` observed at ``ts``, decayed to ``now``."""
        return value * 2.0 ** (-(now - ts) / self.half_life_ms)
