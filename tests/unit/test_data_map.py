"""The data map (currents/keys.py DATA_MAP) covers every key builder, and every structure
that can hold a user id has a way to be erased (profiles/erasure.py) that works."""

from __future__ import annotations

import inspect

from currents import keys
from currents.writes import SetAdd, ZAdd
from online_models.memory import MemoryStore
from profiles import erasure
from profiles.erasure import ErasureScope, erasure_writes


def builders() -> set[str]:
    """Every public function of currents/keys.py (cached ones included)."""
    return {
        name
        for name, value in vars(keys).items()
        if callable(value)
        and not inspect.isclass(value)
        and getattr(value, "__module__", None) == keys.__name__
        and not name.startswith("_")
    }


def test_every_key_builder_declares_whether_it_holds_user_ids() -> None:
    undeclared = builders() - set(keys.DATA_MAP) - keys.NOT_KEYS
    assert not undeclared, f"add these to keys.DATA_MAP (or NOT_KEYS): {sorted(undeclared)}"
    assert set(keys.DATA_MAP) <= builders() and builders() >= keys.NOT_KEYS


def test_every_structure_holding_user_ids_has_an_erasure() -> None:
    holding = {name for name, holds in keys.DATA_MAP.items() if holds}
    tagged = {name for name, holds in keys.DATA_MAP.items() if holds == keys.TAGGED}
    assert set(erasure.TAGGED) == tagged
    assert set(erasure.MEMBERS) == holding - tagged
    for name in tagged:  # a tagged key is named by the user's tag, so SCAN finds it
        assert getattr(keys, name)("someone").startswith(keys.user_tag("someone"))


def test_the_erasure_writes_leave_no_trace_in_the_store() -> None:
    user, other = "gone{1}", "stays"
    store = MemoryStore()
    seeded = [
        ZAdd(keys.sweep_schedule(), {user: 1.0, other: 1.0}),
        SetAdd(keys.slate_refresh(1), (user, other)),
        ZAdd(keys.segment_members("vip"), {user: 1.0, other: 1.0}),
        ZAdd(keys.campaign_timers(), {keys.timer_member(t, user): 1.0 for t in ("cart", "pd:c:1")}),
        ZAdd(keys.item_watchers("sku"), {user: 1.0, other: 1.0}),
    ]
    store.apply(seeded)
    store.strings[keys.user_profile(user)] = b"{}"
    store.strings[keys.user_slate(user)] = b"slate"
    scope = ErasureScope(segments=("vip",), timers=("cart", "pd:c:1"), partitions=2, items=("sku",))
    store.apply(erasure_writes(user, scope))
    held = [
        *store.strings,
        *(m for members in store.zsets.values() for m in members),
        *(m for members in store.sets.values() for m in members),
    ]
    assert not [value for value in held if user in value]
    assert other in store.zsets[keys.item_watchers("sku")]
