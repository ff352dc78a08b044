"""`currents up` on embedded servers: ready, then Ctrl-C leaves nothing running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from currents.embedded import die_with_parent, port_open
from tests.integration.conftest import REPO, poll


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_up_starts_embedded_servers_and_stops_everything(tmp_path: Path, stop_signal: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURRENTS_")}
    env |= {"CURRENTS_DATA_DIR": str(tmp_path), "CURRENTS_API_PORT": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "currents.cli", "up"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    try:
        up_file = tmp_path / "up.json"
        poll(
            lambda: up_file.exists() or process.poll() is not None,
            timeout_s=90,
            what="currents up to be ready",
        )
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        info = json.loads(up_file.read_text())
        assert httpx.get(f"{info['api_url']}/readyz").status_code == 200
        key = info["api_key"]
        body = httpx.get(
            f"{info['api_url']}/v1/users/someone/recommendations", headers={"X-API-Key": key}
        ).json()
        assert body["personalized"] is False
        pids = [p["pid"] for p in info["processes"].values()]
        ports = [info["api_port"]] + [p["port"] for p in info["processes"].values() if "port" in p]
        assert len(pids) == 5 and len(ports) == 3  # supervisor, worker, api, broker, redis

        started = time.monotonic()
        process.send_signal(stop_signal)
        process.wait(20)
        took = time.monotonic() - started
        output = process.stdout.read().decode() if process.stdout else ""
        assert took < 15, output
        assert process.returncode == 0, output
        assert "curl -s -H 'X-API-Key: " in output
        assert [pid for pid in pids if alive(pid)] == []
        assert [port for port in ports if port_open(port)] == []
    finally:
        if process.poll() is None:
            process.kill()
