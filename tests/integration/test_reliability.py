"""Nothing lost, nothing applied twice: a clean pass of a scripted log against a pass that
is stopped (SIGTERM), killed (SIGKILL) and restarted mid-stream, then hit by a duplicate
storm and a consumer-group rewind. The two databases must hold the same state.

`pytest --long` runs the sizes behind docs/reliability.md; the default fits in CI.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from currents import keys
from tests.integration.conftest import Servers
from tests.integration.reliability import (
    Pass,
    differences,
    produce,
    promotion_sends,
    rewind,
    scripted_events,
    snapshot,
)

ARTIFACT = "reliability.json"


@dataclass(frozen=True)
class Size:
    events: int
    users: int
    kills: int
    rewind: int
    storm_share: float = 0.3


@pytest.fixture(scope="module")
def size(request: pytest.FixtureRequest) -> Size:
    if request.config.getoption("--long"):
        return Size(events=200_000, users=20_000, kills=5, rewind=10_000)
    return Size(events=50_000, users=5_000, kills=3, rewind=10_000)


@pytest.fixture(scope="module")
def scripted_log(servers: Servers, size: Size) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    if "cluster=" in servers.redis_url:
        pytest.fail("the reliability passes need separate databases; use a single Redis")
    topic = f"currents.events.reliability-{uuid.uuid4().hex[:8]}"
    events = scripted_events(size.events, size.users)
    yield topic, events


@pytest.fixture(scope="module")
def report() -> Iterator[dict[str, Any]]:
    from tests.integration.test_schemathesis import ARTIFACTS

    found: dict[str, Any] = {}
    yield found
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ARTIFACT).write_bytes(orjson.dumps(found, option=orjson.OPT_INDENT_2))
    print("\nreliability:", orjson.dumps(found).decode())


@pytest.fixture(scope="module")
def clean_state(
    servers: Servers,
    scripted_log: tuple[str, list[dict[str, Any]]],
    tmp_path_factory: pytest.TempPathFactory,
    report: dict[str, Any],
) -> dict[str, Any]:
    topic, events = scripted_log
    clean = Pass(servers, topic, db=6, log_dir=tmp_path_factory.mktemp("clean"))
    clean.prepare()
    started = time.monotonic()
    produce(servers.bootstrap, topic, events)
    report["produce_s"] = round(time.monotonic() - started, 1)
    started = time.monotonic()
    clean.start()
    try:
        clean.wait_for_applied(len(events), timeout_s=600)
        report["clean_pass_s"] = round(time.monotonic() - started, 1)
        clean.settle()
        state = snapshot(clean.client)
        report["clean_promotion_sends"] = promotion_sends(clean.client)
        report["clean_state_hash"] = state_hash(state)
    finally:
        clean.stop()
    assert clean.counter("duplicates") == 0
    return state


def state_hash(state: dict[str, Any]) -> str:
    """A digest of the state with floats to 9 significant digits (sums of the same terms
    added in another order differ in the last bits only)."""

    def canonical(value: Any) -> Any:
        if isinstance(value, float):
            return float(f"{value:.9g}")
        if isinstance(value, dict):
            return {str(k): canonical(v) for k, v in sorted(value.items())}
        if isinstance(value, list | tuple):
            return [canonical(v) for v in value]
        if isinstance(value, bytes):
            try:
                return canonical(float(value))
            except ValueError:
                return value.decode(errors="replace")
        return value

    return hashlib.sha256(orjson.dumps(canonical(state), option=orjson.OPT_SORT_KEYS)).hexdigest()


@pytest.mark.timeout(3600)
def test_stops_kills_and_restarts_lose_nothing_and_apply_nothing_twice(
    servers: Servers,
    scripted_log: tuple[str, list[dict[str, Any]]],
    clean_state: dict[str, Any],
    size: Size,
    tmp_path_factory: pytest.TempPathFactory,
    report: dict[str, Any],
) -> None:
    topic, events = scripted_log
    total = len(events)
    crashed = Pass(servers, topic, db=7, log_dir=tmp_path_factory.mktemp("crashed"))
    crashed.prepare()
    crashed.start()
    recoveries = []
    try:
        # First a graceful stop of a busy worker: its offsets must cover its state, so
        # the restarted worker meets no event it has already applied.
        crashed.wait_for_applied(total // (size.kills + 2), timeout_s=600)
        report["sigterm_exit_s"] = round(crashed.terminate(), 2)
        assert report["sigterm_exit_s"] < 30
        crashed.start()
        for kill in range(1, size.kills + 1):
            crashed.wait_for_applied(total * (kill + 1) // (size.kills + 2), timeout_s=600)
            if kill == 1:
                report["duplicates_after_sigterm_restart"] = crashed.counter("duplicates")
                assert report["duplicates_after_sigterm_restart"] == 0
            crashed.kill()
            applied_at_kill = crashed.counter("events_processed")
            restarted = time.monotonic()
            crashed.start()
            crashed.wait_for_applied(min(total, applied_at_kill + 1), timeout_s=120)
            recoveries.append(round(time.monotonic() - restarted, 1))
        crashed.wait_for_applied(total, timeout_s=600)
        crashed.settle()
        state = snapshot(crashed.client)
    finally:
        crashed.stop()

    applied = crashed.counter("events_processed")
    report["crash"] = {
        "events": total,
        "sigterm_stops": 1,
        "kills": crashed.kills,
        "lost": total - applied if applied <= total else 0,
        "double_applied": max(0, applied - total),
        "redeliveries_caught": crashed.counter("duplicates"),
        "recovery_s": recoveries,
        "promotion_sends": promotion_sends(crashed.client),
        "state_hash": state_hash(state),
    }
    assert applied == total
    diffs = differences(clean_state, state)
    assert not diffs, "\n".join(diffs)
    assert report["crash"]["promotion_sends"] == report["clean_promotion_sends"] > 0

    # The duplicate storm on the same database: 30% of the events again (new offsets),
    # and the group rewound by 10,000 records. Nothing may change.
    storm = random.Random(5).sample(events, int(total * size.storm_share))
    produce(servers.bootstrap, topic, storm)
    # A rewind of this engine's group moves its progress in Redis too: a worker commits
    # that progress when assigned (streams/offsets.py), so a Kafka-only rewind would be
    # undone rather than replayed.
    group = crashed.env["CURRENTS_WORKER_GROUP"]
    progress = keys.consumer_progress(group, topic)
    before_rewind = {int(p): int(o) for p, o in crashed.client.hgetall(progress).items()}
    targets = rewind(servers.bootstrap, topic, group, size.rewind)
    crashed.client.hset(progress, mapping={str(p): o - 1 for p, o in targets.items()})
    rewound = sum(before_rewind[p] + 1 - targets[p] for p in targets)
    caught_before = crashed.counter("duplicates")
    started = time.monotonic()
    crashed.start()
    try:
        deadline = time.monotonic() + 600
        while crashed.counter("duplicates") < caught_before + len(storm) + rewound:
            assert time.monotonic() < deadline, "the storm was not fully redelivered"
            time.sleep(0.2)
        crashed.settle()
        stormed = snapshot(crashed.client)
    finally:
        crashed.stop()
    report["storm"] = {
        "reproduced": len(storm),
        "rewound_records": rewound,
        "caught": crashed.counter("duplicates") - caught_before,
        "double_applied": crashed.counter("events_processed") - total,
        "seconds": round(time.monotonic() - started, 1),
        "state_hash": state_hash(stormed),
    }
    assert rewound == size.rewind
    assert crashed.counter("events_processed") == total
    diffs = differences(clean_state, stormed)
    assert not diffs, "\n".join(diffs)
