from pathlib import Path

import pytest

from profiles.expressions import ExpressionError, compile_condition
from profiles.segments import SegmentError, evaluation_context, load_segments_file

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = {
    "tier": "gold",
    "lifecycle": "at_risk",
    "rfm": {"m": 4, "r": 1},
    "points": 10,
    "affinity": {"category": {"electronics": 0.5}, "brand": {}},
    "cart": {"value": 60, "count": 2},
    "segments": ["vip"],
    "traits": {"region": "DE-BE"},
    "counts": {"order_completed": 3},
    "spending": {"price_band": None},
}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("tier in [gold, diamond] and affinity.category.electronics >= 0.3", True),
        ("lifecycle == at_risk and rfm.m >= 4", True),
        ("not (cart.value < 50) or counts.order_completed >= 3", True),
        ("affinity.category.books > 0", False),
        ("affinity.category.books == 0", True),
        ("counts.product_viewed >= 1", False),
        ("segments contains vip and not segments contains other", True),
        ('traits.region == "DE-BE"', True),
        ("traits.gender == f", False),
        ("spending.price_band == null", True),
        ("spending.median_price > 10", False),
        ("tier not in [basic, silver]", True),
        ("(tier == basic or tier == gold) and points != 11", True),
    ],
)
def test_conditions(condition, expected):
    assert compile_condition(condition)(CONTEXT) is expected


@pytest.mark.parametrize(
    ("condition", "position", "fragment"),
    [
        ("tier == gold and foo > 1", 17, "unknown field 'foo'"),
        ("rfm.m >= >= 4", 9, "expected a value"),
        ("tier == platinum", 8, "not a tier"),
        ("lifecycle == churned", 13, "not a lifecycle stage"),
        ("counts.teleported > 1", 0, "'teleported' is not one of"),
        ("traits.email == x", 0, "'email' is not one of"),
        ("tier == gold and", 16, "expected a field name"),
        ("(tier == gold", 13, "expected ')'"),
        ("tier ~ gold", 5, "unexpected character"),
        ("rfm.m > high", 8, "not a number"),
        ("segments == vip", 9, "use 'contains'"),
        ("", 0, "empty condition"),
    ],
)
def test_errors_carry_the_position(condition, position, fragment):
    with pytest.raises(ExpressionError) as error:
        compile_condition(condition)
    assert error.value.position == position
    assert fragment in error.value.message


def test_the_demo_segments_file_is_valid():
    names = [d.name for d in load_segments_file(ROOT / "examples/segments.yaml")]
    assert names == ["high-value", "electronics-fans", "at-risk", "cart-holders"]


def test_a_bad_file_names_the_segment(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("ok:\n  condition: tier == gold\nbroken:\n  condition: tier === gold\n")
    with pytest.raises(SegmentError, match="segment 'broken': position 7"):
        load_segments_file(path)


def test_evaluation_context_uses_the_condition_names():
    profile = {
        "affinities": {"category": {"x": 1.0}, "brand": {}},
        "cart": {"items": [{"product_id": "p"}], "value": 5.0},
    }
    context = evaluation_context(profile)
    assert context["affinity"]["category"] == {"x": 1.0}
    assert context["cart"] == {"value": 5.0, "count": 1}
