"""The crash scenario of test_reliability.py on grocery traffic: a catalog, then baskets
of 1-80 lines from weekly regulars with long histories (benchmarks/heavy_baskets.py).
Batches of such orders are cut into parts by cost; a kill between two parts of one batch
must neither lose the later parts nor apply the earlier ones twice.

The test function and fixtures are test_reliability.py's; this module gives them a heavy
log and its size (`pytest --long`: 30,000 orders).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.heavy_baskets import heavy_basket_events
from tests.integration.conftest import Servers
from tests.integration.test_reliability import (
    Size,
    clean_state,
    test_stops_kills_and_restarts_lose_nothing_and_apply_nothing_twice,
)

__all__ = ["clean_state", "test_stops_kills_and_restarts_lose_nothing_and_apply_nothing_twice"]

ARTIFACT = "reliability-heavy.json"
CATALOG = 900
NEIGHBOURS = 1000


@pytest.fixture(scope="module", autouse=True)
def untrimmed_neighbours() -> Iterator[None]:
    """Neighbour lists are top-K, trimmed after each part of a batch: once more than K
    neighbours compete, which tail members survive depends on where parts end, so two
    passes can differ there (docs/reliability.md). A catalog smaller than K keeps every
    neighbour, and the passes must then agree exactly."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CURRENTS_COOCCURRENCE_NEIGHBOURS", str(NEIGHBOURS))
        yield


@pytest.fixture(scope="module")
def size(request: pytest.FixtureRequest) -> Size:
    if request.config.getoption("--long"):
        return Size(events=30_000, users=10_000, kills=5, rewind=5_000)
    return Size(events=5_000, users=2_000, kills=3, rewind=2_000)


@pytest.fixture(scope="module")
def scripted_log(servers: Servers, size: Size) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    if "cluster=" in servers.redis_url:
        pytest.fail("the reliability passes need separate databases; use a single Redis")
    topic = f"currents.events.reliability-heavy-{uuid.uuid4().hex[:8]}"
    now = int(time.time() * 1000)
    events = heavy_basket_events(size.events, size.users, CATALOG, end_ms=now)
    catalog = [e for e in events if e["type"] == "item_upserted"]
    orders = events[len(catalog) :]
    # Marketing consent for every customer, so the thank-you campaign sends promotions
    # and their exactly-once delivery is checked too.
    first = orders[0]["timestamp"] - 1
    identifies = [
        {
            "event_id": f"identify-{user}",
            "type": "identify",
            "user_id": user,
            "timestamp": first,
            "properties": {"traits": {"marketing_consent": True}},
        }
        for user in sorted({e["user_id"] for e in orders})
    ]
    yield topic, catalog + identifies + orders


@pytest.fixture(scope="module")
def report() -> Iterator[dict[str, Any]]:
    import orjson

    from tests.integration.test_schemathesis import ARTIFACTS

    found: dict[str, Any] = {}
    yield found
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ARTIFACT).write_bytes(orjson.dumps(found, option=orjson.OPT_INDENT_2))
    print("\nreliability (heavy baskets):", orjson.dumps(found).decode())
