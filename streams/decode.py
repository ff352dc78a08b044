"""Turn raw Kafka record values into validated events, or dead letters with a reason.

A record holds one event object or a JSON array of events (the API packs a request's
events per partition). Nothing here raises on input: every failure becomes a
:class:`DeadLetter` carrying the error and the original bytes.

>>> events, dead = decode_record(b'[{"event_id": "e1", "type": "product_viewed",'
...     b' "user_id": "u", "timestamp": 1, "properties": {"product_id": "p"}}, 7]', 0, 5)
>>> [(e.event.event_id, e.offset, e.index) for e in events], [(d.index, d.error) for d in dead]
([('e1', 5, 0)], [(1, 'event: expected a JSON object, got int')])
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.events import MAX_EVENT_BYTES, Event, InvalidEventError, parse_event

MAX_EVENTS_PER_RECORD = 1000


@dataclass(frozen=True, slots=True)
class PositionedEvent:
    """An event and where it was read: (partition, offset, index within the record)."""

    event: Event
    partition: int
    offset: int
    index: int
    raw: Any = None  # the decoded JSON, kept for dead-lettering after validation

    @property
    def position(self) -> list[int]:
        return [self.offset, self.index]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    error: str
    original: bytes
    partition: int
    offset: int
    index: int | None = None

    def to_bytes(self, source_topic: str) -> bytes:
        return orjson.dumps(
            {
                "error": self.error,
                "topic": source_topic,
                "partition": self.partition,
                "offset": self.offset,
                "index": self.index,
                "original_b64": base64.b64encode(self.original).decode(),
            }
        )


def decode_record(
    value: bytes | None, partition: int, offset: int
) -> tuple[list[PositionedEvent], list[DeadLetter]]:
    raw_value = value or b""
    try:
        decoded = orjson.loads(raw_value)
    except orjson.JSONDecodeError as error:
        return [], [DeadLetter(f"invalid JSON: {error}", raw_value, partition, offset)]

    if isinstance(decoded, list):
        if len(decoded) > MAX_EVENTS_PER_RECORD:
            reason = f"record holds {len(decoded)} events; the limit is {MAX_EVENTS_PER_RECORD}"
            return [], [DeadLetter(reason, raw_value, partition, offset)]
        items = list(enumerate(decoded))
        packed = True
    else:
        if len(raw_value) > MAX_EVENT_BYTES:
            reason = f"event is {len(raw_value)} bytes; the limit is {MAX_EVENT_BYTES}"
            return [], [DeadLetter(reason, raw_value, partition, offset)]
        items = [(0, decoded)]
        packed = False

    events: list[PositionedEvent] = []
    dead: list[DeadLetter] = []
    for index, item in items:
        original = orjson.dumps(item) if packed else raw_value
        if packed and len(original) > MAX_EVENT_BYTES:
            reason = f"event is {len(original)} bytes; the limit is {MAX_EVENT_BYTES}"
            dead.append(DeadLetter(reason, original, partition, offset, index))
            continue
        try:
            events.append(PositionedEvent(parse_event(item), partition, offset, index, item))
        except InvalidEventError as error:
            dead.append(DeadLetter(str(error), original, partition, offset, index))
    return events, dead
