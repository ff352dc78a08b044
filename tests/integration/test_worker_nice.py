"""CURRENTS_WORKER_NICE: a worker started with it runs at that niceness, every thread of
it that does the work (checked in /proc, as `ps` would show it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from currents.embedded import die_with_parent
from tests.integration.conftest import REPO, Engine, poll


def niceness(pid: int, thread: int) -> int:
    # Field 19 of stat, after the parenthesised command name (which may hold spaces).
    stat = Path(f"/proc/{pid}/task/{thread}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


def test_the_worker_runs_at_the_configured_niceness(engine: Engine, unique: str) -> None:
    env = {**engine.env, "CURRENTS_WORKER_NICE": "7", "CURRENTS_WORKER_GROUP": f"nice-{unique}"}
    with (engine.log_dir / f"nice-{unique}.log").open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "currents.cli", "worker"],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
    try:
        # The main thread runs the event loop (every batch); it is niced before Faust
        # starts, so the threads Faust starts inherit it.
        tasks = Path(f"/proc/{worker.pid}/task")
        poll(lambda: niceness(worker.pid, worker.pid) == 7 or None, timeout_s=60, what="niced")
        poll(lambda: len(list(tasks.iterdir())) > 3 or None, what="Faust's threads")
        threads = [int(t.name) for t in tasks.iterdir()]
        assert sum(niceness(worker.pid, t) == 7 for t in threads) >= len(threads) // 2
        assert niceness(engine.processes["api"].pid, engine.processes["api"].pid) == 0
    finally:
        worker.terminate()
        worker.wait(timeout=30)
