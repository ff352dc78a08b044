"""The image the Dockerfile builds holds the whole package and runs the engine.

No Docker engine here: tests/image_build.py rebuilds the image's contents from the
Dockerfile and .dockerignore (build context, COPY, the RUN's `pip install .` into a
fresh Python), then its entrypoint runs the way docker-compose.yml runs it — `currents
topics`, `currents worker`, `currents api` — against the session's broker and Redis.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from schemas.examples import example_event
from tests.image_build import Builder, BuildError, Image
from tests.integration.conftest import REPO, Engine, Servers, poll, start_engine, stop_engine

STATIC = REPO / "serving" / "web" / "static"
PAGES = {"index.html": "/", "dashboard.html": "/dashboard"}


def tracked(*paths: str) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--", *paths], cwd=REPO, capture_output=True, text=True, check=True
    )
    return listed.stdout.split()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    started = time.monotonic()
    builder = Builder(REPO, tmp_path_factory.mktemp("image"))
    failure = None
    try:
        built = builder.build((REPO / "Dockerfile").read_text())
    except BuildError as error:
        failure = str(error)
    if failure is not None:
        pytest.fail(f"the Dockerfile does not build:\n{failure}", pytrace=False)
    print(f"image contents built in {time.monotonic() - started:.1f}s")
    return built


@pytest.fixture(scope="module")
def image_engine(
    image: Image, servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    log_dir = tmp_path_factory.mktemp("image-engine")
    # What compose's environment: gives every service, plus loopback-only binding here.
    env = image.process_env(
        CURRENTS_KAFKA_BOOTSTRAP=servers.bootstrap,
        CURRENTS_REDIS_URL=servers.redis_url,
        CURRENTS_API_HOST="127.0.0.1",
    )
    topics = subprocess.run(
        image.argv(["topics", "--timeout", "30"]),
        cwd=image.path("."),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert topics.returncode == 0, topics.stdout + topics.stderr
    engine = start_engine(
        servers,
        log_dir,
        cli=image.argv([]),
        cwd=image.path("."),
        base_env=env,
        CURRENTS_API_HOST="127.0.0.1",
    )
    yield engine
    stop_engine(engine)


def test_the_image_holds_every_file_of_every_package(image: Image) -> None:
    """Every tracked file under a top-level package (tests aside) is installed: a new
    package, module or static file the build leaves out fails here."""
    packages = sorted(p.parent.name for p in REPO.glob("*/__init__.py") if p.parent.name != "tests")
    expected = set(tracked(*packages))
    listing = subprocess.run(
        [
            str(image.bin / "python"),
            "-c",
            "import importlib.metadata as m; print(*m.files('currents'), sep='\\n')",
        ],
        cwd=image.path("."),
        env=image.process_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    installed = set(listing.stdout.split())
    assert "profiles/__init__.py" in expected and "serving/web/static/index.html" in expected
    assert sorted(expected - installed) == []


def test_the_image_runs_the_engine_and_serves_the_storefront(image_engine: Engine) -> None:
    assert httpx.get(f"{image_engine.api_url}/readyz").status_code == 200

    for name in tracked("serving/web/static"):
        path = Path(name).name
        route = PAGES.get(path, f"/static/{path}")
        response = httpx.get(f"{image_engine.api_url}{route}")
        assert response.status_code == 200, route
        assert response.content == (REPO / name).read_bytes(), route

    user = f"image-{uuid.uuid4().hex[:8]}"
    event = example_event("product_viewed", event_id=f"e-{user}", user_id=user)
    accepted = image_engine.post_events(event)
    assert accepted.status_code == 202, accepted.text
    with image_engine.client("admin") as client:

        def profile() -> dict[str, object] | None:
            response = client.get(f"/v1/users/{user}/profile")
            return orjson.loads(response.content) if response.status_code == 200 else None

        found = poll(profile, timeout_s=20, what="the worker from the image to fold the event")
    assert (found["user_id"], found["counts"]) == (user, {"product_viewed": 1})
