"""Schemathesis against the live API's /openapi.json: every default check, including
``ignored_auth`` and negative data, over a bounded number of examples.

It runs on an engine of its own (its own Redis database and topics), so the random
segments, campaigns and rules it creates never reach the other tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from tests.integration.conftest import Engine, Servers, start_engine, stop_engine

MAX_EXAMPLES = int(os.environ.get("CURRENTS_SCHEMATHESIS_EXAMPLES", "25"))


def other_database(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


@pytest.fixture(scope="module")
def isolated(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if "cluster=" in servers.redis_url:
        pytest.fail("the schemathesis run needs a second database; point it at a single Redis")
    redis_url = other_database(servers.redis_url, 3)
    redis.Redis.from_url(redis_url).flushdb()
    run = uuid.uuid4().hex[:8]
    isolated_servers = Servers(servers.bootstrap, redis_url, servers.external)
    engine = start_engine(
        isolated_servers,
        tmp_path_factory.mktemp("schemathesis"),
        CURRENTS_EVENTS_TOPIC=f"currents.events.fuzz-{run}",
        CURRENTS_DLQ_TOPIC=f"currents.events.dlq.fuzz-{run}",
        CURRENTS_PROMOTIONS_TOPIC=f"currents.promotions.fuzz-{run}",
        CURRENTS_SEGMENTS_TOPIC=f"currents.segments.fuzz-{run}",
        CURRENTS_PROFILE_CHANGES_TOPIC=f"currents.profile-changes.fuzz-{run}",
        CURRENTS_RATE_LIMIT_PER_S="0",
    )
    yield engine
    stop_engine(engine)
    redis.Redis.from_url(redis_url).flushdb()


ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def test_openapi_contract_holds_under_schemathesis(isolated: Engine) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    report = ARTIFACTS / "schemathesis.txt"
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(Path(__file__).resolve().parents[1] / "schemathesis.toml"),
        "run",
        f"{isolated.api_url}/openapi.json",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--header",
        f"X-API-Key: {isolated.keys['admin']}",
        # One worker: hypothesis parses lambda sources with `ast`, which CPython 3.11 can
        # crash on from two threads at once ("AST constructor recursion depth mismatch").
        "--workers",
        "1",
        "--seed",
        "42",
        "--no-color",
        "--request-timeout",
        "10",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    report.write_text(completed.stdout + completed.stderr)
    assert completed.returncode == 0, completed.stdout[-6000:] + completed.stderr[-2000:]
