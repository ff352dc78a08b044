"""A real `currents up --demo` (embedded broker and Redis, worker, API, synthetic shoppers)
and headless Chromium from Debian (`/usr/bin/chromium`), driven by Playwright.

No browser is downloaded: `make tools` installs Debian's chromium, and Playwright is told
to use it. Screenshots go to tests/artifacts/e2e/ (gitignored)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from currents.embedded import die_with_parent
from tests.integration.conftest import REPO, poll

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "tests" / "artifacts" / "e2e"
DEMO_RATE = "100"  # synthetic events per second, as `make demo` sends them
WARM_EVENTS = 1500  # the catalog (500 items) and ~1000 shopper events: models have signal


@dataclass
class Demo:
    api_url: str
    admin_key: str
    page_key: str
    data_dir: Path

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, headers={"X-API-Key": self.admin_key})

    def as_page(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, headers={"X-API-Key": self.page_key})


# Package scope: the demo (and its synthetic shoppers) and the browser's event loop end
# with tests/e2e, before the other suites run.
@pytest.fixture(scope="package")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    data_dir = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURRENTS_")}
    env |= {"CURRENTS_DATA_DIR": str(data_dir), "CURRENTS_API_PORT": "0"}
    output = (data_dir / "up.out").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "currents.cli", "up", "--demo", "--rate", DEMO_RATE],
        env=env,
        cwd=REPO,
        stdout=output,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    try:
        up_file = data_dir / "up.json"
        poll(
            lambda: up_file.exists() or process.poll() is not None,
            timeout_s=90,
            what="currents up --demo to be ready",
        )
        assert process.poll() is None, (data_dir / "up.out").read_text()
        info = json.loads(up_file.read_text())
        config = httpx.get(f"{info['api_url']}/demo-config.js").text
        match = re.search(r'"apiKey": "([^"]+)"', config)
        assert match, f"the demo page got no key: {config}"
        demo = Demo(info["api_url"], info["api_key"], match.group(1), data_dir)

        def processed() -> int:
            text = httpx.get(f"{demo.api_url}/metrics").text
            found = re.search(r"^currents_events_processed_total (\d+)", text, re.M)
            return int(found.group(1)) if found and int(found.group(1)) >= WARM_EVENTS else 0

        started = time.monotonic()
        poll(processed, timeout_s=60, what=f"{WARM_EVENTS} events through the worker")
        print(f"demo warm ({WARM_EVENTS} events) {time.monotonic() - started:.1f}s after ready")
        yield demo
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        output.close()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            "Debian's chromium is missing: run `make tools` "
            "(apt-get install -y chromium chromium-driver)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: run `make setup` (dev extras)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Tab:
    """One browser tab, every URL it requested, its script errors, numbered screenshots."""

    name: str
    page: Any
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    shots: list[Path] = field(default_factory=list)

    def shot(self, step: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{len(self.shots) + 1:02d}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)
        print(f"screenshot: {path}")
        return path


@pytest.fixture
def tab(browser: Any, request: pytest.FixtureRequest) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    name = request.node.name.removeprefix("test_")
    opened = Tab(name, page)
    page.on("request", lambda r: opened.requests.append(r.url))
    page.on("pageerror", lambda e: opened.errors.append(str(e)))
    page.set_default_timeout(15_000)
    started = time.monotonic()
    try:
        yield opened
    finally:
        print(f"{name}: {time.monotonic() - started:.1f}s in the browser")
        context.close()
