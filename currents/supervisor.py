"""`currents up`: embedded servers where none are configured, then the worker and the API
(and, with ``--demo``, synthetic shoppers) as child processes.

Ctrl-C or SIGTERM stops every child within 15 s: children get SIGTERM, stragglers get
SIGKILL on their whole process group, then the embedded servers stop. Every child also
asks the kernel to SIGTERM it if this process dies, so nothing is orphaned.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from currents.embedded import ServerProcess, die_with_parent, free_port, start_broker, start_redis
from currents.errors import CurrentsError
from currents.redis_client import tls_options
from currents.redis_loading import wait_until_loaded_sync
from currents.settings import Settings
from currents.topics import ensure_topics
from serving.security import format_entry, new_secret

CHILD_STOP_S = 11.0
READY_TIMEOUT_S = 90.0
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEMO_SEGMENTS = EXAMPLES / "segments.yaml"
DEMO_CAMPAIGNS = EXAMPLES / "campaigns.yaml"
DEMO_USER = "user-00000"  # the generator gives it a session first
# The storefront sends recommendation_shown and attributed clicks: this gives them an
# experiment to count in (the dashboard shows its stats).
DEMO_EXPERIMENT: dict[str, object] = {
    "name": "demo-blend",
    "variants": [
        {"name": "control", "weight": 1},
        {
            "name": "session-boost",
            "weight": 1,
            "blend": {
                "cooccurrence": 1,
                "session": 1.5,
                "mf": 0.1,
                "content": 0.4,
                "trending": 0.1,
            },
        },
    ],
}


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    restart: bool = True
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Stack:
    settings: Settings
    demo: bool = False
    demo_rate: float = 100.0
    servers: list[ServerProcess] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    stopping: bool = False

    def say(self, text: str) -> None:
        print(text, flush=True)

    # --- start ---------------------------------------------------------------------------
    def start(self) -> dict[str, str]:
        data_dir = self.settings.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        bootstrap = self.settings.kafka_bootstrap
        redis_url = self.settings.redis_url
        if not bootstrap:
            broker = start_broker(data_dir)
            self.servers.append(broker)
            bootstrap = broker.address
            self.say(f"embedded Kafka-protocol broker (Tansu) at {bootstrap}")
        if not redis_url:
            redis = start_redis(data_dir)
            self.servers.append(redis)
            redis_url = redis.address
            self.say(f"embedded redis-server at {redis_url} (AOF in {data_dir / 'redis'})")
        # A large AOF loads for minutes: that is "not yet", so wait with progress rather
        # than let the API and worker start against a Redis that answers only -LOADING.
        wait_until_loaded_sync(
            redis_url, "redis", say=self.say, **tls_options(redis_url, self.settings)
        )
        ensure_topics(bootstrap, self.settings)

        api_key = ""
        api_keys = self.settings.api_keys
        if not api_keys:
            api_key = new_secret()
            api_keys = format_entry("local", api_key, {"ingest", "read", "admin"})
            key_file = data_dir / "api-key"
            key_file.write_text(api_key + "\n")
            key_file.chmod(0o600)
        demo_page_key = self.settings.demo_page_key
        if self.demo and not demo_page_key:
            # The storefront's key: read+ingest only, handed to the page at /demo-config.js.
            demo_page_key = new_secret()
            api_keys += ";" + format_entry("demo-page", demo_page_key, {"ingest", "read"})
        port = self.settings.api_port or free_port()
        api_url = f"http://{self.settings.api_host}:{port}"

        env = dict(os.environ)
        env.setdefault("CURRENTS_PSEUDONYM_KEY", persistent_pseudonym_key(data_dir))
        if self.demo and not self.settings.segments_file and DEMO_SEGMENTS.exists():
            env["CURRENTS_SEGMENTS_FILE"] = str(DEMO_SEGMENTS)
        env.update(
            CURRENTS_KAFKA_BOOTSTRAP=bootstrap,
            CURRENTS_REDIS_URL=redis_url,
            CURRENTS_API_KEYS=api_keys,
            CURRENTS_DEMO_PAGE_KEY=demo_page_key,
            CURRENTS_API_PORT=str(port),
            CURRENTS_DATA_DIR=str(data_dir),
        )
        cli = [sys.executable, "-m", "currents.cli"]
        self.children.append(Child("worker", [*cli, "worker"], env, data_dir / "worker.log"))
        self.children.append(Child("api", [*cli, "api"], env, data_dir / "api.log"))
        for child in self.children:
            child.start()
        self.say(f"worker and API starting; logs in {data_dir}/worker.log and {data_dir}/api.log")
        self._wait_ready(api_url)
        if self.demo and api_key and DEMO_CAMPAIGNS.exists():
            self._load_campaigns(api_url, api_key)
        if self.demo and api_key:
            self._put(api_url, api_key, f"experiments/{DEMO_EXPERIMENT['name']}", DEMO_EXPERIMENT)
        if self.demo and api_key:
            generator = Child(
                "generator",
                [
                    *cli,
                    "generate",
                    "--rate",
                    str(self.demo_rate),
                    "--duration",
                    "0",
                    "--target",
                    "http",
                    "--api-url",
                    api_url,
                    "--api-key",
                    api_key,
                    "--no-progress",
                ],
                env,
                data_dir / "generator.log",
            )
            generator.start()
            self.children.append(generator)
        info = {
            "api_url": api_url,
            "api_key": api_key,
            "storefront_url": f"{api_url}/",
            "dashboard_url": f"{api_url}/dashboard",
            "kafka_bootstrap": bootstrap,
            "redis_url": redis_url,
        }
        processes = {
            "supervisor": {"pid": os.getpid()},
            **{c.name: {"pid": c.process.pid} for c in self.children if c.process},
            **{s.name: {"pid": s.process.pid, "port": s.port} for s in self.servers},
        }
        (data_dir / "up.json").write_text(
            json.dumps({**info, "api_port": port, "processes": processes}, indent=2)
        )
        return info

    def _wait_ready(self, api_url: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        reasons = "no answer yet"
        while time.monotonic() < deadline and not self.stopping:
            for child in self.children:
                if not child.alive():
                    raise CurrentsError(
                        f"{child.name} exited during start-up; see {child.log_path}"
                    )
            try:
                with urllib.request.urlopen(f"{api_url}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as error:
                reasons = error.read().decode(errors="replace")
            except OSError:
                pass
            time.sleep(0.25)
        if self.stopping:
            raise CurrentsError("interrupted during start-up")
        raise CurrentsError(f"the engine was not ready within {READY_TIMEOUT_S:.0f}s: {reasons}")

    def _load_campaigns(self, api_url: str, api_key: str) -> None:
        campaigns = yaml.safe_load(DEMO_CAMPAIGNS.read_text()) or {}
        for campaign_id, body in campaigns.items():
            request = urllib.request.Request(
                f"{api_url}/v1/campaigns/{campaign_id}",
                data=json.dumps(body).encode(),
                method="PUT",
                headers={"X-API-Key": api_key, "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=5):
                pass
        self.say(f"demo campaigns loaded: {', '.join(campaigns)}")

    @staticmethod
    def _put(api_url: str, api_key: str, path: str, body: dict[str, object]) -> None:
        request = urllib.request.Request(
            f"{api_url}/v1/{path}",
            data=json.dumps(body).encode(),
            method="PUT",
            headers={"X-API-Key": api_key, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5):
            pass

    # --- run and stop --------------------------------------------------------------------
    def supervise(self) -> None:
        """Restart a crashed worker or API until asked to stop."""
        while not self.stopping:
            for child in self.children:
                if child.alive() or not child.restart or self.stopping:
                    continue
                code = child.process.returncode if child.process else None
                if child.name == "generator":
                    child.restart = False
                    continue
                child.restarts += 1
                self.say(f"{child.name} exited with code {code}; restarting (#{child.restarts})")
                time.sleep(min(5, child.restarts))
                child.start()
            time.sleep(0.5)

    def stop(self) -> None:
        self.stopping = True
        for child in reversed(self.children):
            if child.alive() and child.process:
                child.process.terminate()
        deadline = time.monotonic() + CHILD_STOP_S
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait(2)
        for child in self.children:  # grandchildren left in a child's group
            if child.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGKILL)
        for server in reversed(self.servers):
            server.stop(timeout_s=2.0)


def persistent_pseudonym_key(data_dir: Path) -> str:
    """One pseudonym key per data dir, so log and audit pseudonyms survive restarts."""
    path = data_dir / "pseudonym.key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def run_up(settings: Settings, demo: bool, demo_rate: float) -> int:
    stack = Stack(settings, demo=demo, demo_rate=demo_rate)

    def request_stop(signum: int, _frame: object) -> None:
        if not stack.stopping:
            stack.say(f"\nstopping (signal {signum})…")
        stack.stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        info = stack.start()
        key = info["api_key"] or "<your key>"
        stack.say("")
        stack.say(f"Currents is ready: {info['api_url']}")
        stack.say(f"  API key:   {key}")
        stack.say(f"  API docs:  {info['api_url']}/docs")
        if demo:
            stack.say(f"  store:     {info['storefront_url']}  (the demo storefront)")
            stack.say(f"  dashboard: {info['dashboard_url']}  (paste the API key for admin data)")
        stack.say(f"  metrics:   {info['api_url']}/metrics")
        stack.say(
            f"  try:       curl -s -H 'X-API-Key: {key}' "
            f"'{info['api_url']}/v1/users/{DEMO_USER}/recommendations?n=5'"
        )
        if demo:
            stack.say(
                "  synthetic shoppers are flowing (log: generator.log). Ctrl-C stops everything."
            )
        stack.supervise()
        return 0
    except CurrentsError as error:
        stack.say(f"error: {error}")
        return 1
    finally:
        stack.stop()
        stack.say("stopped.")
