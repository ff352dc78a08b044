"""Validate a `POST /v1/events` payload and pack its events into Kafka records.

Events that fall on the same partition are packed into one record (a JSON array); the
worker reads single events and arrays alike. Partitions follow Kafka's default murmur2
partitioner on the user key, so packed and single-event producers agree.

>>> plan = plan_records(
...     [{"event_id": "a", "type": "product_viewed", "user_id": "u1", "timestamp": 1,
...       "properties": {"product_id": "p"}}, {"event_id": "b"}], partitions=4)
>>> (len(plan.records), plan.accepted, plan.rejected)
(1, 1, [{'index': 1, 'event_id': 'b', 'error': 'type: Field required'}])
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson

from currents.partitioning import partition_for
from profiles.fold import RejectedEvent, admit
from profiles.rules import ProfileRules
from schemas.events import (
    CONTROL_TYPES,
    MAX_EVENT_BYTES,
    InvalidEventError,
    parse_event,
    partition_key,
)


@dataclass(frozen=True, slots=True)
class PackedRecord:
    partition: int
    key: bytes
    value: bytes
    indexes: tuple[int, ...]


@dataclass
class IngestPlan:
    records: list[PackedRecord] = field(default_factory=list)
    accepted: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


def _event_id_of(raw: Any) -> str | None:
    if isinstance(raw, dict) and isinstance(raw.get("event_id"), str):
        return str(raw["event_id"])[:128]
    return None


def plan_records(
    raw_events: list[Any],
    partitions: int,
    *,
    rules: ProfileRules | None = None,
    allow_control: bool = False,
) -> IngestPlan:
    """The events that will be applied, packed per partition, and the rest rejected one
    by one: invalid ones, and (with ``rules``, the worker's profile rules) valid ones the
    worker would reject, with its message (``profiles.fold.admit``)."""
    plan = IngestPlan()
    by_partition: dict[int, list[tuple[int, str, bytes]]] = defaultdict(list)
    for index, raw in enumerate(raw_events):
        try:
            event = parse_event(raw)
            if event.type in CONTROL_TYPES and not allow_control:
                raise InvalidEventError("type: reserved for the engine's own API routes")
            if rules is not None:
                admit(event, rules)
            encoded = orjson.dumps(raw)
            if len(encoded) > MAX_EVENT_BYTES:
                raise InvalidEventError(
                    f"event: {len(encoded)} bytes; the limit is {MAX_EVENT_BYTES}"
                )
        except (InvalidEventError, RejectedEvent) as error:
            plan.rejected.append(
                {"index": index, "event_id": _event_id_of(raw), "error": str(error)}
            )
            continue
        key = partition_key(raw)
        by_partition[partition_for(key, partitions)].append((index, key, encoded))
        plan.accepted += 1

    for partition, items in sorted(by_partition.items()):
        if len(items) == 1:
            value = items[0][2]
        else:
            value = b"[" + b",".join(encoded for _, _, encoded in items) + b"]"
        plan.records.append(
            PackedRecord(
                partition=partition,
                key=items[0][1].encode(),
                value=value,
                indexes=tuple(index for index, _, _ in items),
            )
        )
    return plan
