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
