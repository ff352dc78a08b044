"""Segment definitions: validation, the evaluation context, and the file loader.

>>> registry = SegmentRegistry.from_definitions([
...     SegmentDefinition.create("big-spenders", "rfm.m >= 4", version=1)])
>>> registry.members_for({"rfm": {"m": 5}})
{'big-spenders'}
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from profiles.expressions import Condition, ExpressionError, compile_condition

SEGMENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class SegmentError(ValueError):
    pass


@dataclass(frozen=True)
class SegmentDefinition:
    name: str
    condition: str
    description: str = ""
    version: int = 0
    compiled: Condition = field(compare=False, repr=False, default=lambda ctx: False)

    @classmethod
    def create(
        cls, name: str, condition: str, description: str = "", version: int = 0
    ) -> SegmentDefinition:
        if not SEGMENT_NAME.match(name):
            raise SegmentError(
                f"segment name {name!r}: use 1-64 of a-z, 0-9, '-' and '_', starting alphanumeric"
            )
        return cls(name, condition, description, version, compile_condition(condition))

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.condition.encode()).hexdigest()[:16]

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "name": self.name,
                "condition": self.condition,
                "description": self.description,
                "version": self.version,
            }
        )

    @classmethod
    def from_json(cls, blob: bytes | str) -> SegmentDefinition:
        data = orjson.loads(blob)
        return cls.create(
            data["name"], data["condition"], data.get("description", ""), data.get("version", 0)
        )


@dataclass
class SegmentRegistry:
    definitions: dict[str, SegmentDefinition] = field(default_factory=dict)

    @classmethod
    def from_definitions(cls, definitions: Iterable[SegmentDefinition]) -> SegmentRegistry:
        return cls({d.name: d for d in definitions})

    def members_for(self, context: Mapping[str, Any]) -> set[str]:
        return {name for name, d in self.definitions.items() if d.compiled(context)}

    def __bool__(self) -> bool:
        return bool(self.definitions)


class EvaluationContext(Mapping[str, Any]):
    """The public profile under the names the condition language uses, still lazy:
    ``affinity`` for ``affinities`` and ``cart.count`` for the number of cart lines."""

    def __init__(self, profile: Mapping[str, Any]) -> None:
        self.profile = profile

    def __getitem__(self, name: str) -> Any:
        if name == "affinity":
            return self.profile["affinities"]
        if name == "cart":
            cart = self.profile["cart"]
            return {"value": cart["value"], "count": len(cart["items"])}
        return self.profile[name]

    def __iter__(self) -> Iterator[str]:
        return iter([*self.profile, "affinity"])

    def __len__(self) -> int:
        return len(self.profile) + 1


def evaluation_context(profile: Mapping[str, Any]) -> EvaluationContext:
    return EvaluationContext(profile)


def load_segments_file(path: Path) -> list[SegmentDefinition]:
    """Definitions from YAML or JSON: a mapping name -> {condition, description} or a list
    of {name, condition, description}. Errors name the segment and the position."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise SegmentError(f"cannot read segments file {path}: {error}") from error
    if isinstance(data, dict):
        entries = [{"name": name, **(body or {})} for name, body in data.items()]
    elif isinstance(data, list):
        entries = data
    else:
        raise SegmentError(f"{path}: expected a mapping or a list of segments")
    definitions = []
    for entry in entries:
        name = str(entry.get("name", ""))
        try:
            definitions.append(
                SegmentDefinition.create(
                    name, str(entry.get("condition", "")), str(entry.get("description", ""))
                )
            )
        except ExpressionError as error:
            raise SegmentError(f"{path}: segment {name!r}: {error}") from error
    return definitions
