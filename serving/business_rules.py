"""Business rules applied after scoring: blocklists, boosts, promoted slots and pins.

Order: blocks and boosts change the scored list; the list is cut to ``n`` (with the
diversity cap); promoted slots then take evenly spaced positions for items matching the
rule's filter; pins finally take their exact slots.

>>> rules = [Rule(id="no-b", kind="block", item_id="b"),
...          Rule(id="pin", kind="pin", item_id="p", slot=1)]
>>> ranked = [Candidate(item, score, "x", {}) for item, score in (("a", 3), ("b", 2), ("c", 1))]
>>> [c.item_id for c in apply_rules(ranked, rules, n=3, pinned_records={"p": {}})]
['p', 'a', 'c']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

RuleKind = Literal["pin", "boost", "block", "promote"]


class Rule(BaseModel):
    """One business rule. Target one of ``item_id``, ``category`` or ``brand``."""

    model_config = ConfigDict(strict=True)

    id: str = Field("", max_length=64)
    kind: RuleKind
    item_id: str | None = Field(None, max_length=128)
    category: str | None = Field(None, max_length=256)
    brand: str | None = Field(None, max_length=256)
    slot: int | None = Field(None, ge=1, le=100, description="pin: 1-based position")
    factor: float | None = Field(None, gt=0, le=100, description="boost: score multiplier")
    share: float | None = Field(None, gt=0, le=1, description="promote: share of slots")
    active: bool = True

    @model_validator(mode="after")
    def _complete(self) -> Rule:
        targets = [t for t in (self.item_id, self.category, self.brand) if t]
        if len(targets) != 1:
            raise ValueError("set exactly one of item_id, category, brand")
        if self.kind == "pin" and (not self.item_id or self.slot is None):
            raise ValueError("a pin needs item_id and slot")
        if self.kind == "boost" and self.factor is None:
            raise ValueError("a boost needs factor")
        if self.kind == "promote" and self.share is None:
            raise ValueError("a promote rule needs share")
        return self

    def matches(self, item_id: str, record: Mapping[str, str]) -> bool:
        if self.item_id:
            return item_id == self.item_id
        if self.category:
            return record.get("category") == self.category
        return record.get("brand") == self.brand


@dataclass(frozen=True)
class Candidate:
    item_id: str
    score: float
    reason: str
    record: Mapping[str, str]


def apply_rules(
    ranked: Sequence[Candidate],
    rules: Sequence[Rule],
    n: int,
    pinned_records: Mapping[str, Mapping[str, str]],
    diversity: int | None = None,
) -> list[Candidate]:
    active = [r for r in rules if r.active]
    kept = _kept(ranked, active)
    chosen = _cap(kept, n, diversity)
    for rule in (r for r in active if r.kind == "promote"):
        chosen = _promote(chosen, kept, rule, n)
    pins = sorted((r for r in active if r.kind == "pin"), key=lambda r: (r.slot or 0, r.id))
    for rule in pins:
        item = rule.item_id or ""
        record = pinned_records.get(item)
        if record is None or record.get("in_stock") == "0":
            continue  # unknown or out of stock: a pin never shows an unavailable item
        position = min((rule.slot or 1) - 1, len(chosen))
        top_score = chosen[0].score if chosen else 1.0
        chosen.insert(position, Candidate(item, top_score, "featured", record))
    return chosen[:n]


def chosen_before_pins(
    ranked: Sequence[Candidate], rules: Sequence[Rule], n: int, diversity: int | None = None
) -> list[Candidate]:
    """The items :func:`apply_rules` picks before promoted slots and pins are placed."""
    return _cap(_kept(ranked, [r for r in rules if r.active]), n, diversity)


def _kept(ranked: Sequence[Candidate], active: Sequence[Rule]) -> list[Candidate]:
    """Blocked items removed, boosts applied, re-sorted; pinned items left out (pins place
    them themselves)."""
    blocked = [r for r in active if r.kind == "block"]
    boosts = [r for r in active if r.kind == "boost"]
    kept = []
    for candidate in ranked:
        if any(r.matches(candidate.item_id, candidate.record) for r in blocked):
            continue
        factor = 1.0
        for rule in boosts:
            if rule.matches(candidate.item_id, candidate.record):
                factor *= rule.factor or 1.0
        kept.append(
            replace(candidate, score=candidate.score * factor) if factor != 1.0 else candidate
        )
    kept.sort(key=lambda c: (-c.score, c.item_id))
    pinned_ids = {r.item_id for r in active if r.kind == "pin"}
    return [c for c in kept if c.item_id not in pinned_ids]


def _promote(chosen: list[Candidate], kept: list[Candidate], rule: Rule, n: int) -> list[Candidate]:
    """Put the best matching items at evenly spaced slots; the rest keep their order."""
    slots = set(_promoted_positions(n, rule.share or 0.0))
    promoted = [c for c in kept if rule.matches(c.item_id, c.record)][: len(slots)]
    rest = [c for c in chosen if not rule.matches(c.item_id, c.record)]
    result: list[Candidate] = []
    for position in range(n):
        if position in slots and promoted:
            result.append(replace(promoted.pop(0), reason="promoted"))
        elif rest:
            result.append(rest.pop(0))
        elif promoted:
            result.append(replace(promoted.pop(0), reason="promoted"))
    return result


def _cap(ranked: Sequence[Candidate], n: int, diversity: int | None) -> list[Candidate]:
    per_category: dict[str, int] = {}
    chosen = []
    for candidate in ranked:
        category = candidate.record.get("category", "")
        if diversity is not None and per_category.get(category, 0) >= diversity:
            continue
        per_category[category] = per_category.get(category, 0) + 1
        chosen.append(candidate)
        if len(chosen) == n:
            break
    return chosen


def _promoted_positions(n: int, share: float) -> list[int]:
    """Deterministic, evenly spaced 0-based positions for ``round(n * share)`` slots.

    >>> _promoted_positions(10, 0.2)
    [2, 7]
    """
    count = max(0, min(n, round(n * share)))
    if not count:
        return []
    step = n / count
    return [int(step * k + step / 2) for k in range(count)]
