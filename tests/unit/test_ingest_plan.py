import orjson
from aiokafka.partitioner import DefaultPartitioner

from currents.partitioning import partition_for
from schemas.examples import example_event
from serving.ingest import plan_records


def test_partition_matches_kafka_default_partitioner():
    partitioner = DefaultPartitioner()
    for user in ("u-1", "alice", "ünïcode", "x" * 100):
        expected = partitioner(user.encode(), list(range(12)), list(range(12)))
        assert partition_for(user, 12) == expected


def test_events_on_one_partition_are_packed_into_one_array_record():
    events = [example_event("product_viewed", event_id=f"e{i}", user_id="same") for i in range(3)]
    plan = plan_records(events, partitions=4)
    assert plan.accepted == 3 and len(plan.records) == 1
    record = plan.records[0]
    assert record.partition == partition_for("same", 4)
    assert [e["event_id"] for e in orjson.loads(record.value)] == ["e0", "e1", "e2"]
    assert record.indexes == (0, 1, 2)


def test_single_event_record_is_a_plain_object():
    plan = plan_records([example_event("product_viewed")], partitions=4)
    assert orjson.loads(plan.records[0].value)["event_id"] == "ex-product_viewed"
    assert plan.records[0].key == b"u-42"


def test_rejections_name_index_event_id_and_field():
    bad = example_event("product_added", event_id="bad-1")
    bad["properties"] = {"product_id": "p"}
    plan = plan_records([example_event("product_viewed"), bad, 42], partitions=4)
    assert plan.accepted == 1
    assert plan.rejected == [
        {"index": 1, "event_id": "bad-1", "error": "properties.price: Field required"},
        {"index": 2, "event_id": None, "error": "event: expected a JSON object, got int"},
    ]


def test_catalog_events_are_keyed_by_item():
    plan = plan_records([example_event("item_upserted")], partitions=4)
    assert plan.records[0].key == b"sku-1"


def test_orders_are_admitted_with_the_workers_currency_rules():
    """What the worker's fold would reject (profiles.fold.admit) is rejected at ingest with
    the same message; a configured rate lets the same order through."""
    from profiles.fold import RejectedEvent, fold_event
    from profiles.rules import ProfileRules
    from schemas.events import parse_event
    from schemas.profile import UserState

    order = example_event("order_completed", event_id="o1")
    order["properties"]["currency"] = "usd"
    view = example_event("product_viewed", event_id="v1")
    eur_only = ProfileRules(base_currency="EUR")
    plan = plan_records([order, view], partitions=4, rules=eur_only)
    assert plan.accepted == 1 and [r["index"] for r in plan.rejected] == [0]
    try:
        fold_event(UserState(), parse_event(order), eur_only, {})
    except RejectedEvent as error:
        assert plan.rejected[0]["error"] == str(error)
    else:
        raise AssertionError("the worker's fold accepted what ingest rejected")
    assert "CURRENTS_CURRENCY_RATES" in plan.rejected[0]["error"]
    with_rate = ProfileRules(base_currency="EUR", currency_rates={"USD": 0.92})
    assert plan_records([order], partitions=4, rules=with_rate).accepted == 1
