"""The batch-write fast paths against straightforward reference implementations."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from currents.writes import (
    Delete,
    HashIncr,
    HashSet,
    Put,
    SetAdd,
    SetRemove,
    Write,
    ZAdd,
    ZIncr,
    ZKeepTop,
    ZRemove,
    coalesce,
)
from streams.apply_script import encode, pack_apply

names = st.sampled_from(["k", "{u:1}:profile", "é", "{i:9}:co", "h"])
members = st.text(min_size=1, max_size=6)
amounts = st.floats(allow_nan=False, allow_infinity=False, width=64)
writes_strategy = st.lists(
    st.one_of(
        st.builds(ZIncr, names, st.sampled_from(["a", "b", "ü"]), amounts),
        st.builds(HashIncr, names, st.sampled_from(["f", "g"]), st.integers(-5, 5)),
        st.builds(ZKeepTop, names, st.integers(0, 200)),
        st.builds(Put, names, st.binary(max_size=8), st.one_of(st.none(), st.integers(1, 99))),
        st.builds(HashSet, names, st.dictionaries(members, st.one_of(st.integers(), amounts))),
        st.builds(ZAdd, names, st.dictionaries(members, amounts, max_size=3)),
        st.builds(ZRemove, names, st.lists(members, max_size=3).map(tuple)),
        st.builds(SetAdd, names, st.lists(members, max_size=3).map(tuple)),
        st.builds(SetRemove, names, st.lists(members, max_size=3).map(tuple)),
        st.builds(Delete, names),
    ),
    max_size=40,
)


def reference_coalesce(writes: list[Write]) -> list[Write]:
    """The sort-based version coalesce replaced."""
    merged: dict[tuple[str, str, str], Write] = {}
    passthrough: list[tuple[int, Write]] = []
    order: dict[tuple[str, str, str], int] = {}
    for position, write in enumerate(writes):
        if isinstance(write, ZIncr):
            slot = ("z", write.key, write.member)
            previous = merged.get(slot)
            amount = write.amount + (previous.amount if isinstance(previous, ZIncr) else 0.0)
            merged[slot] = ZIncr(write.key, write.member, amount)
        elif isinstance(write, HashIncr):
            slot = ("h", write.key, write.field)
            previous = merged.get(slot)
            count = write.amount + (previous.amount if isinstance(previous, HashIncr) else 0)
            merged[slot] = HashIncr(write.key, write.field, count)
        else:
            passthrough.append((position, write))
            continue
        order.setdefault(slot, position)
    ordered = [(order[slot], write) for slot, write in merged.items()] + passthrough
    return [write for _, write in sorted(ordered, key=lambda pair: pair[0])]


def reference_pack(sha: str, keys: list[str], args: list[str | bytes | int]) -> bytes:
    """A generic RESP packer, one argument at a time (what redis-py does)."""
    items: list[str | bytes | int] = ["EVALSHA", sha, len(keys), *keys, *args]
    out = b"*%d\r\n" % len(items)
    for item in items:
        data = item if isinstance(item, bytes) else str(item).encode()
        out += b"$%d\r\n%b\r\n" % (len(data), data)
    return out


@settings(max_examples=300)
@given(writes_strategy)
def test_coalesce_matches_the_reference(writes: list[Write]) -> None:
    assert coalesce(writes) == reference_coalesce(writes)


@settings(max_examples=300)
@given(writes_strategy)
def test_pack_apply_sends_the_command_encode_describes(writes: list[Write]) -> None:
    keys, args = encode(writes)
    assert pack_apply("0123abcd", writes) == reference_pack("0123abcd", keys, args)


def test_encode_names_each_key_once_in_first_seen_order() -> None:
    keys, args = encode([ZIncr("b", "m", 1.0), ZKeepTop("a", 2), ZIncr("b", "n", 2.0)])
    assert keys == ["b", "a"]
    assert args == ["Z", 1, "1.0", "m", "T", 2, -3, "Z", 1, "2.0", "n"]
