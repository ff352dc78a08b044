import pytest

from schemas.events import EVENT_TYPES, InvalidEventError, parse_event
from schemas.examples import EXAMPLES, example_event


def test_every_type_has_a_documented_example():
    assert set(EXAMPLES) == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_examples_are_valid(event_type):
    event = parse_event(example_event(event_type))
    assert event.type == event_type
    assert event.ts == 1795341600000


def test_epoch_milliseconds_and_rfc3339_agree():
    a = parse_event(example_event("product_viewed", timestamp=1795341600000))
    b = parse_event(example_event("product_viewed", timestamp="2026-11-22T11:00:00+01:00"))
    assert a.ts == b.ts == 1795341600000


def test_timestamp_without_offset_is_rejected():
    with pytest.raises(InvalidEventError, match="timestamp"):
        parse_event(example_event("product_viewed", timestamp="2026-11-22T10:00:00"))


def test_unknown_fields_are_kept_or_ignored_never_fatal():
    raw = example_event("product_viewed", surprise={"x": 1})
    raw["properties"] = {**raw["properties"], "colour": "red"}
    event = parse_event(raw)
    assert event.props.colour == "red"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: e.pop("event_id"), "event_id"),
        (lambda e: e.update(type="product_teleported"), "type"),
        (lambda e: e.update(timestamp="yesterday"), "timestamp"),
        (lambda e: e.update(channel="fax"), "channel"),
        (lambda e: e["properties"].pop("product_id"), "properties.product_id"),
        (lambda e: e["properties"].update(price="cheap"), "properties.price"),
        (lambda e: e.update(user_id=None), "user_id"),
    ],
)
def test_missing_or_ill_typed_fields_are_named(mutate, field):
    raw = example_event("product_added")
    raw["properties"] = dict(raw["properties"])
    mutate(raw)
    with pytest.raises(InvalidEventError) as error:
        parse_event(raw)
    assert str(error.value).startswith(field)


def test_anonymous_events_are_keyed_by_anonymous_id():
    raw = example_event("product_viewed")
    del raw["user_id"]
    raw["anonymous_id"] = "anon-1"
    assert parse_event(raw).user_key == "anon-1"


def test_id_length_limit():
    with pytest.raises(InvalidEventError, match="user_id"):
        parse_event(example_event("product_viewed", user_id="u" * 129))
    assert parse_event(example_event("product_viewed", user_id="u" * 128)).user_id


def test_order_line_limit():
    raw = example_event("order_completed")
    line = {"product_id": "p", "price": 1.0, "quantity": 1}
    raw["properties"] = {**raw["properties"], "products": [line] * 201}
    with pytest.raises(InvalidEventError, match=r"properties\.products"):
        parse_event(raw)
    raw["properties"]["products"] = [line] * 200
    assert len(parse_event(raw).props.products) == 200


def test_rating_bounds():
    raw = example_event("product_reviewed")
    raw["properties"] = {"product_id": "p", "rating": 6}
    with pytest.raises(InvalidEventError, match=r"properties\.rating"):
        parse_event(raw)


def test_non_object_is_rejected():
    with pytest.raises(InvalidEventError, match="expected a JSON object"):
        parse_event(["not", "an", "event"])
