"""`currents bench profile-cost`: in-process cost of the worker's per-event logic.

Synthetic shoppers' events are parsed once, then timed through (a) the profile fold alone
and (b) the whole batch logic (profile, models, segments, writes), batch by batch, with no
servers involved. Reports microseconds per event.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.common import bar_plot, print_table, write_results
from benchmarks.generator import SyntheticShop
from currents.settings import Settings
from profiles.fold import fold_event
from profiles.rules import ProfileRules
from profiles.segments import SegmentRegistry, load_segments_file
from schemas.events import parse_event
from schemas.profile import UserState
from streams.decode import PositionedEvent
from streams.processor import BatchInput, BatchProcessor

EXAMPLE_SEGMENTS = Path(__file__).resolve().parent.parent / "examples" / "segments.yaml"


def run(events: int, users: int, out: Path | None) -> dict[str, Any]:
    shop = SyntheticShop(users=users, items=2000, seed=3)
    start = 1_790_000_000_000
    stream = shop.stream(start, session_gap_ms=1000)
    raw = [next(stream) for _ in range(events)]
    started = time.perf_counter()
    parsed = [parse_event(r) for r in raw]
    parse_us = (time.perf_counter() - started) / events * 1e6

    rules = ProfileRules()
    states: dict[str, UserState] = {}
    started = time.perf_counter()
    for event in parsed:
        fold_event(states.setdefault(event.user_key or "", UserState()), event, rules, {})
    fold_us = (time.perf_counter() - started) / events * 1e6

    processor = BatchProcessor(Settings(kafka_bootstrap="unused:0", redis_url="redis://unused"))
    processor.segments = SegmentRegistry.from_definitions(load_segments_file(EXAMPLE_SEGMENTS))
    positioned = [
        PositionedEvent(e, 0, i, 0, r) for i, (e, r) in enumerate(zip(parsed, raw, strict=True))
    ]
    users_state: dict[str, UserState] = {}
    started = time.perf_counter()
    for begin in range(0, events, 1000):
        chunk = positioned[begin : begin + 1000]
        # Each batch gets its users' state from a decoded blob, as the worker does.
        batch_users = {
            key: UserState.from_bytes(users_state[key].to_bytes())
            for key in {p.event.user_key for p in chunk}
            if key in users_state
        }
        processor.process(BatchInput(chunk, batch_users, {}, start, {}))
        users_state.update(batch_users)
    batch_us = (time.perf_counter() - started) / events * 1e6

    result = {
        "events": events,
        "users": users,
        "parse_us_per_event": round(parse_us, 2),
        "profile_fold_us_per_event": round(fold_us, 2),
        "batch_logic_us_per_event": round(batch_us, 2),
    }
    path = write_results("profile_cost", result, out)
    png = bar_plot(
        path,
        "Per-event cost (in process)",
        ["parse", "profile fold", "batch logic"],
        [parse_us, fold_us, batch_us],
        "µs per event",
    )
    print_table(
        [(k, f"{v:,}") for k, v in result.items()] + [("json", str(path)), ("plot", str(png))]
    )
    return result
