"""Experiments: named variants (different blends), deterministic user bucketing by hash,
and per-variant stats with 95% confidence intervals.

>>> experiment = Experiment(name="blend-test", variants=[
...     Variant(name="control", weight=1), Variant(name="more-mf", weight=1, blend={"mf": 1.0})])
>>> assign(experiment, "user-1").name == assign(experiment, "user-1").name
True
>>> [round(x, 4) for x in wilson(30, 100)]
[0.2189, 0.3958]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from currents.buckets import bucket

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
METRICS = ("impressions", "clicks", "purchases")


class Variant(BaseModel):
    model_config = ConfigDict(strict=True)

    name: str = Field(..., pattern=NAME_PATTERN)
    weight: float = Field(1.0, gt=0, le=1000, description="Share of traffic (relative)")
    blend: dict[str, float] | None = Field(
        None, description="Model -> weight; omitted means the engine's default blend"
    )


class Experiment(BaseModel):
    model_config = ConfigDict(strict=True)

    name: str = Field("", pattern=r"^$|" + NAME_PATTERN)
    variants: list[Variant] = Field(..., min_length=1, max_length=10)
    active: bool = True

    @model_validator(mode="after")
    def _unique_variants(self) -> Experiment:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        return self


def assign(experiment: Experiment, user_id: str) -> Variant:
    point = bucket(experiment.name, user_id) * sum(v.weight for v in experiment.variants)
    for variant in experiment.variants:
        point -= variant.weight
        if point < 0:
            return variant
    return experiment.variants[-1]


def wilson(successes: int, trials: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a proportion (95% by default)."""
    if trials <= 0:
        return (0.0, 0.0)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def variant_stats(experiment: Experiment, counts: Mapping[str, int]) -> list[dict[str, Any]]:
    """``counts`` holds ``<variant>:<metric>`` fields from the worker."""
    rows = []
    for variant in experiment.variants:
        impressions = counts.get(f"{variant.name}:impressions", 0)
        clicks = counts.get(f"{variant.name}:clicks", 0)
        purchases = counts.get(f"{variant.name}:purchases", 0)
        rows.append(
            {
                "variant": variant.name,
                "impressions": impressions,
                "clicks": clicks,
                "ctr": round(clicks / impressions, 6) if impressions else 0.0,
                "ctr_ci95": [round(x, 6) for x in wilson(clicks, impressions)],
                "purchases": purchases,
                "conversion_rate": round(purchases / impressions, 6) if impressions else 0.0,
                "conversion_ci95": [round(x, 6) for x in wilson(purchases, impressions)],
            }
        )
    return rows
