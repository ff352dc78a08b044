"""Scripted batches through the pure batch logic, asserting exact state and writes."""

from currents import keys
from currents.settings import Settings
from currents.writes import HashIncr, HashSet, Put, SetAdd, SetRemove, ZIncr, ZKeepTop
from online_models.memory import MemoryStore
from schemas.events import parse_event
from schemas.examples import example_event
from schemas.profile import UserState
from streams.decode import PositionedEvent
from streams.processor import BatchInput, BatchProcessor, CatalogEntry

SETTINGS = Settings(kafka_bootstrap="x:1", redis_url="redis://x")


def positioned(raw, offset, partition=0, index=0):
    return PositionedEvent(parse_event(raw), partition, offset, index)


def view(event_id, item, ts, user="u1"):
    raw = example_event("product_viewed", event_id=event_id, user_id=user, timestamp=ts)
    raw["properties"] = {"product_id": item}
    return raw


def run(events, users=None, versions=None):
    """The worker's two steps: fold the batch, then let the models learn it."""
    users = users if users is not None else {}
    processor = BatchProcessor(SETTINGS)
    result = processor.process(BatchInput(events, users, versions or {}))
    store = MemoryStore()
    result.writes += processor.learn(
        result.interactions, store.fetch(processor.learn_reads(result.interactions))
    )
    return result, users


def test_counts_first_and_last_seen_and_recent_items_in_event_time():
    events = [
        positioned(view("a", "p1", 3000), 1),
        positioned(view("b", "p2", 1000), 2),  # late: older than the first
        positioned(view("c", "p1", 2000), 3),  # p1 again but older than its newest view
    ]
    result, users = run(events)
    state = users["u1"]
    assert state.counts == {"product_viewed": 3}
    assert (state.first_seen, state.last_seen) == (1000, 3000)
    assert state.recent == [["p1", 3000], ["p2", 1000]]
    assert result.applied == 3 and result.duplicates == 0


def test_repeated_event_id_is_applied_once():
    events = [positioned(view("same", "p1", 1000), 1), positioned(view("same", "p1", 1000), 2)]
    result, users = run(events)
    assert users["u1"].counts == {"product_viewed": 1}
    assert (result.applied, result.duplicates) == (1, 1)


def test_redelivered_record_below_watermark_is_skipped_across_batches():
    _, users = run(
        [
            positioned(view("a", "p1", 1000), 10, index=0),
            positioned(view("b", "p2", 1001), 10, index=1),
        ]
    )
    blob = users["u1"].to_bytes()
    # The same record is delivered again after a crash, plus one new record.
    result, users = run(
        [
            positioned(view("a", "p1", 1000), 10, index=0),
            positioned(view("b", "p2", 1001), 10, index=1),
            positioned(view("c", "p3", 1002), 11),
        ],
        users={"u1": UserState.from_bytes(blob)},
    )
    assert users["u1"].counts == {"product_viewed": 3}
    assert (result.applied, result.duplicates) == (1, 2)


def test_views_feed_popularity_and_both_directions_of_cooccurrence():
    result, _ = run([positioned(view("a", "p1", 0), 1), positioned(view("b", "p2", 0), 2)])
    zincr = [w for w in result.writes if isinstance(w, ZIncr)]
    for horizon in ("short", "long"):
        popularity = [w for w in zincr if w.key == f"currents:pop:{horizon}:global:g0"]
        assert sorted((w.member, w.amount) for w in popularity) == [("p1", 1.0), ("p2", 1.0)]
    pairs = sorted((w.key, w.member) for w in zincr if ":co:" in w.key)
    assert pairs == [("{i:p1}:co:viewed:g0", "p2"), ("{i:p2}:co:viewed:g0", "p1")]
    trims = {w.key for w in result.writes if isinstance(w, ZKeepTop)}
    assert {"{i:p1}:co:viewed:g0", "{i:p2}:co:viewed:g0"} <= trims
    assert {"currents:pop:short:global:g0", "currents:pop:long:global:g0"} <= trims
    factors = sorted(w.key for w in result.writes if isinstance(w, Put) and w.key.endswith(":mf"))
    assert factors == ["{i:p1}:mf", "{i:p2}:mf", "{u:u1}:mf"]


def test_order_marks_items_purchased_and_pairs_bought_together():
    order = example_event("order_completed", event_id="o", user_id="u1", timestamp=5000)
    result, users = run([positioned(order, 1)])
    assert users["u1"].purchased_item_ids() == {"sku-1", "sku-7"}
    bought = sorted(
        (w.key, w.member, w.amount)
        for w in result.writes
        if isinstance(w, ZIncr) and ":co:bought" in w.key
    )
    assert [(k, m) for k, m, _ in bought] == [
        ("{i:sku-1}:co:bought:g0", "sku-7"),
        ("{i:sku-7}:co:bought:g0", "sku-1"),
    ]


def test_state_blob_and_counters_are_written():
    result, users = run([positioned(view("a", "p1", 1000), 1)])
    puts = [w for w in result.writes if isinstance(w, Put) and w.key.endswith(":profile")]
    assert puts == [Put(keys.user_profile("u1"), users["u1"].to_bytes())]
    incrs = {(w.field, w.amount) for w in result.writes if isinstance(w, HashIncr)}
    assert incrs == {("events_processed", 1), ("type:product_viewed", 1), ("users", 1)}


def test_catalog_upserts_last_writer_by_event_time_wins():
    newer = example_event("item_upserted", event_id="n", timestamp=2000)
    older = example_event("item_upserted", event_id="o", timestamp=1000)
    older["properties"] = {**older["properties"], "in_stock": False}
    result, _ = run([positioned(newer, 1), positioned(older, 2)])
    hsets = [w for w in result.writes if isinstance(w, HashSet)]
    assert len(hsets) == 1 and hsets[0].mapping["ts"] == 2000
    assert SetRemove(keys.out_of_stock(), ("sku-1",)) in result.writes
    assert not any(isinstance(w, SetAdd) for w in result.writes)
    # Already stored at a newer version: nothing changes.
    result, _ = run([positioned(older, 3)], versions={"sku-1": CatalogEntry(5000, "shoes", "acme")})
    assert result.applied == 0 and result.duplicates == 1


def test_out_of_stock_upsert_adds_to_the_set():
    raw = example_event("item_upserted", timestamp=1)
    raw["properties"] = {**raw["properties"], "in_stock": False}
    result, _ = run([positioned(raw, 1)])
    assert SetAdd(keys.out_of_stock(), ("sku-1",)) in result.writes
