"""Experiment attribution from a scripted feedback stream, and business rules."""

from __future__ import annotations

from collections import Counter

import pytest

from currents import keys
from currents.settings import Settings
from online_models.memory import MemoryStore
from schemas.events import parse_event
from serving.business_rules import Candidate, Rule, apply_rules
from serving.experiments import Experiment, Variant, assign, variant_stats, wilson
from streams.decode import PositionedEvent
from streams.processor import BatchInput, BatchProcessor

T0 = 1_790_000_000_000
EXPERIMENT = Experiment(name="exp", variants=[Variant(name="a"), Variant(name="b")])


def event(index, kind, user, **properties):
    raw = {
        "event_id": f"e{index}",
        "type": kind,
        "user_id": user,
        "timestamp": T0 + index,
        "properties": properties,
    }
    return PositionedEvent(parse_event(raw), 0, index, 0, raw)


def test_stats_from_a_scripted_feedback_stream_match_hand_computed_values():
    recommendations = {
        f"r{i}": {"experiment": "exp", "variant": "a" if i < 10 else "b"} for i in range(20)
    }
    events = []
    index = 0
    # Variant a: 10 impressions, 3 clicks, 1 purchase; variant b: 10 impressions, 1 click.
    for i in range(20):
        events.append(
            event(
                index := index + 1,
                "recommendation_shown",
                f"u{i}",
                recommendation_id=f"r{i}",
                item_ids=["x", "y"],
            )
        )
    for i in (0, 1, 2, 10):
        events.append(
            event(
                index := index + 1,
                "product_clicked",
                f"u{i}",
                product_id="x",
                recommendation_id=f"r{i}",
            )
        )
    events.append(
        event(
            index := index + 1,
            "order_completed",
            "u0",
            order_id="o",
            revenue=5.0,
            currency="EUR",
            products=[{"product_id": "x", "price": 5.0}],
        )
    )
    # A purchase without a prior recommended click is not attributed.
    events.append(
        event(
            index := index + 1,
            "order_completed",
            "u5",
            order_id="o2",
            revenue=5.0,
            currency="EUR",
            products=[{"product_id": "x", "price": 5.0}],
        )
    )
    processor = BatchProcessor(Settings(kafka_bootstrap="x:0", redis_url="redis://x"))
    result = processor.process(BatchInput(events, {}, {}, T0, {}, recommendations))
    store = MemoryStore()
    store.apply(result.writes)
    counts = {k: int(v) for k, v in store.hashes[keys.experiment_stats("exp")].items()}
    stats = {row["variant"]: row for row in variant_stats(EXPERIMENT, counts)}
    assert (stats["a"]["impressions"], stats["a"]["clicks"], stats["a"]["purchases"]) == (10, 3, 1)
    assert (stats["b"]["impressions"], stats["b"]["clicks"], stats["b"]["purchases"]) == (10, 1, 0)
    assert stats["a"]["ctr"] == 0.3 and stats["b"]["ctr"] == 0.1
    assert stats["a"]["conversion_rate"] == 0.1
    assert stats["a"]["ctr_ci95"] == [round(x, 6) for x in wilson(3, 10)]
    low, high = wilson(3, 10)
    assert low < 0.3 < high and round(low, 4) == 0.1078 and round(high, 4) == 0.6032


def test_bucketing_is_deterministic_and_follows_weights():
    experiment = Experiment(
        name="split", variants=[Variant(name="a", weight=3), Variant(name="b", weight=1)]
    )
    shares = Counter(assign(experiment, f"user-{i}").name for i in range(8000))
    assert shares["a"] / 8000 == pytest.approx(0.75, abs=0.02)
    assert all(
        assign(experiment, f"user-{i}") == assign(experiment, f"user-{i}") for i in range(50)
    )


def candidates(*specs):
    return [
        Candidate(item, score, "model", {"category": category, "brand": brand})
        for item, score, category, brand in specs
    ]


def test_pin_takes_its_slot_and_block_removes():
    ranked = candidates(("a", 5, "c1", "x"), ("b", 4, "c1", "x"), ("c", 3, "c2", "y"))
    rules = [Rule(id="p", kind="pin", item_id="p", slot=2), Rule(id="bl", kind="block", brand="y")]
    out = apply_rules(ranked, rules, n=3, pinned_records={"p": {"category": "c9"}})
    assert [(c.item_id, c.reason) for c in out] == [
        ("a", "model"),
        ("p", "featured"),
        ("b", "model"),
    ]


def test_pin_never_shows_an_out_of_stock_item():
    ranked = candidates(("a", 5, "c1", "x"))
    rules = [Rule(id="p", kind="pin", item_id="p", slot=1)]
    assert [c.item_id for c in apply_rules(ranked, rules, 3, {"p": {"in_stock": "0"}})] == ["a"]


def test_boost_reorders_and_diversity_caps_per_category():
    ranked = candidates(
        ("a", 5, "c1", "x"), ("b", 4, "c1", "x"), ("c", 3, "c1", "x"), ("d", 1, "c2", "z")
    )
    rules = [Rule(id="boost", kind="boost", brand="z", factor=10)]
    assert [c.item_id for c in apply_rules(ranked, rules, 4, {})] == ["d", "a", "b", "c"]
    assert [c.item_id for c in apply_rules(ranked, [], 4, {}, diversity=2)] == ["a", "b", "d"]


def test_promoted_slots_are_filled_deterministically():
    ranked = candidates(
        *[(f"i{k}", 10 - k, "c1", "x") for k in range(8)],
        ("p1", 0.5, "c2", "promo"),
        ("p2", 0.4, "c2", "promo"),
    )
    rules = [Rule(id="promo", kind="promote", brand="promo", share=0.2)]
    out = apply_rules(ranked, rules, 10, {})
    assert [c.item_id for c in out][2] == "p1" and [c.item_id for c in out][7] == "p2"
    assert out[2].reason == "promoted"
    assert out == apply_rules(ranked, rules, 10, {})


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "pin", "item_id": "x"},
        {"kind": "boost", "brand": "b"},
        {"kind": "block"},
        {"kind": "promote", "category": "c"},
        {"kind": "block", "item_id": "x", "brand": "y"},
    ],
)
def test_incomplete_rules_are_refused(body):
    with pytest.raises(ValueError):
        Rule.model_validate(body)
