"""Durable timers: the worker is killed (SIGKILL) during a cart-abandonment delay and
restarted with the same group; the promotion still fires, exactly once, for the
abandoner only, on the API and on the topic."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from currents import keys
from currents.embedded import die_with_parent
from tests.integration.conftest import REPO, Engine, Servers, poll, start_engine, stop_engine
from tests.integration.test_campaign_triggers import events_for, promotions

DELAY_S = 6


@pytest.fixture
def own_engine(servers: Servers, tmp_path: Path) -> Iterator[Engine]:
    engine = start_engine(servers, tmp_path)
    yield engine
    stop_engine(engine)


def restart_worker(engine: Engine) -> None:
    log = (engine.log_dir / "worker.log").open("ab")
    engine.processes["worker"] = subprocess.Popen(
        [sys.executable, "-m", "currents.cli", "worker"],
        env=engine.env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )


def test_kill_9_during_the_delay_still_fires_exactly_once(own_engine: Engine, unique: str) -> None:
    engine = own_engine
    campaign_id = f"cart-{unique}"
    campaign = {
        "name": "Cart abandonment",
        "trigger": {"type": "cart_abandoned", "delay_minutes": DELAY_S / 60},
        "action": {"message": "Your cart is waiting, {user_id}", "discount_percent": 10},
        "guardrails": {"holdout": 0},
    }
    with engine.client("admin") as client:
        assert client.put(f"/v1/campaigns/{campaign_id}", json=campaign).status_code == 201
    time.sleep(1.5)  # the worker reloads campaigns within a second
    abandoner, buyer = f"abandoner-{unique}", f"buyer-{unique}"
    assert engine.post_events(events_for(abandoner, unique, buy=False)).status_code == 202
    assert engine.post_events(events_for(buyer, unique, buy=True)).status_code == 202
    redis = engine.redis()
    member = f"{campaign_id}|{abandoner}"
    due = poll(
        lambda: redis.zscore(keys.campaign_timers(), member),
        timeout_s=15,
        what="the durable timer in Redis",
    )
    poll(
        lambda: (
            redis.zscore(keys.campaign_timers(), f"{campaign_id}|{buyer}") is None
            and promotions(engine, buyer) == []
        ),
        timeout_s=15,
        what="the buyer's timer cancelled",
    )

    worker = engine.processes["worker"]
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    assert time.time() * 1000 < due  # killed inside the delay
    assert promotions(engine, abandoner) == []
    restart_worker(engine)

    found = poll(
        lambda: promotions(engine, abandoner),
        timeout_s=DELAY_S + 30,
        what=f"the promotion after the restart\n{engine.log_tail('worker')}",
    )
    assert [p["campaign_id"] for p in found] == [campaign_id]
    assert found[0]["message"] == f"Your cart is waiting, {abandoner}"
    assert found[0]["created_at"] >= due
    time.sleep(2.5)  # more sweeps: nothing fires again
    assert len(promotions(engine, abandoner)) == 1
    assert promotions(engine, buyer) == []
    assert redis.zscore(keys.campaign_timers(), member) is None
    on_topic = [
        orjson.loads(v)
        for v in engine.consume_all(engine.settings.promotions_topic, 2)
        if orjson.loads(v)["campaign_id"] == campaign_id
    ]
    assert [p["user_id"] for p in on_topic] == [abandoner]
    with engine.client("admin") as client:
        stats = client.get(f"/v1/campaigns/{campaign_id}/stats").json()
    assert stats["sends"] == 1 and stats["treatment"]["exposures"] == 1
