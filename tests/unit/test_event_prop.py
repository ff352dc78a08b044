"""``prop`` is ``getattr(props, name, None)`` for every event type, name and extra."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.generator import SyntheticShop
from schemas.events import PROPERTY_MODELS, parse_event, prop

SHOP = SyntheticShop(users=30, items=40, seed=5)
_stream = SHOP.stream(1_790_000_000_000, session_gap_ms=200)
SAMPLES = SHOP.catalog_events(1_790_000_000_000)[:5] + [next(_stream) for _ in range(400)]
DECLARED = sorted({name for model in PROPERTY_MODELS.values() for name in model.model_fields})
NAMES = [*DECLARED, "note", "gift_wrap", "copy", "model_config", "__class__", "nothing"]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(SAMPLES),
    st.dictionaries(st.sampled_from(["note", "gift_wrap", *DECLARED]), st.text(), max_size=3),
    st.sampled_from(NAMES),
)
def test_prop_is_getattr_on_parsed_events(
    raw: dict[str, Any], extra: dict[str, str], name: str
) -> None:
    fields = PROPERTY_MODELS[raw["type"]].model_fields
    extra = {key: value for key, value in extra.items() if key not in fields}
    props = parse_event({**raw, "properties": {**raw.get("properties", {}), **extra}}).props
    assert _same(prop(props, name), getattr(props, name, None))


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(PROPERTY_MODELS)),
    st.dictionaries(st.sampled_from(["note", "gift_wrap", *DECLARED]), st.text(), max_size=4),
    st.sampled_from(NAMES),
)
def test_prop_is_getattr_on_every_type(kind: str, values: dict[str, str], name: str) -> None:
    props = PROPERTY_MODELS[kind].model_construct(**values)
    assert _same(prop(props, name), getattr(props, name, None))


def test_plain_objects_fall_back_to_getattr() -> None:
    class Plain:
        category = "shoes"

    assert (prop(Plain(), "category"), prop(Plain(), "brand")) == ("shoes", None)


def _same(got: Any, expected: Any) -> bool:
    """Identical objects, or equal ones of one type (bound methods are made per access)."""
    return got is expected or (type(got) is type(expected) and got == expected)
