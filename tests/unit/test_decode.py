import base64

import orjson

from schemas.events import MAX_EVENT_BYTES
from schemas.examples import example_event
from streams.decode import MAX_EVENTS_PER_RECORD, decode_record


def test_single_event_record():
    events, dead = decode_record(orjson.dumps(example_event("product_viewed")), 2, 9)
    assert dead == []
    assert [(e.partition, e.offset, e.index) for e in events] == [(2, 9, 0)]


def test_packed_record_keeps_order_and_positions():
    batch = [example_event("product_viewed", event_id=f"e{i}") for i in range(3)]
    events, _ = decode_record(orjson.dumps(batch), 0, 4)
    assert [e.event.event_id for e in events] == ["e0", "e1", "e2"]
    assert [e.index for e in events] == [0, 1, 2]


def test_garbage_bytes_become_a_dead_letter_with_the_original():
    events, dead = decode_record(b"\xff\x00garbage", 1, 3)
    assert events == []
    assert dead[0].error.startswith("invalid JSON")
    letter = orjson.loads(dead[0].to_bytes("currents.events"))
    assert base64.b64decode(letter["original_b64"]) == b"\xff\x00garbage"
    assert (letter["partition"], letter["offset"]) == (1, 3)


def test_empty_and_null_values():
    assert decode_record(None, 0, 0)[1][0].error.startswith("invalid JSON")
    assert decode_record(b"null", 0, 0)[1][0].error.startswith("event: expected a JSON object")


def test_invalid_items_of_a_packed_record_are_dead_lettered_individually():
    bad = example_event("product_viewed", event_id="bad")
    del bad["properties"]["product_id"]
    record = orjson.dumps([example_event("product_viewed", event_id="good"), bad])
    events, dead = decode_record(record, 0, 0)
    assert [e.event.event_id for e in events] == ["good"]
    assert (dead[0].index, dead[0].error) == (1, "properties.product_id: Field required")


def test_oversize_event_is_rejected():
    big = example_event("product_viewed", padding="x" * MAX_EVENT_BYTES)
    events, dead = decode_record(orjson.dumps(big), 0, 0)
    assert events == [] and "limit" in dead[0].error


def test_too_many_events_in_one_record():
    record = orjson.dumps([example_event("product_viewed")] * (MAX_EVENTS_PER_RECORD + 1))
    events, dead = decode_record(record, 0, 0)
    assert events == [] and "limit" in dead[0].error
