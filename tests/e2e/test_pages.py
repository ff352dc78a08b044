"""The page routes on their own (no servers: the app's lifespan is not run)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from currents.settings import Settings
from serving.main import create_app
from serving.security import format_entry

PAGE_KEY = "cur_page-key-for-tests"
ADMIN_KEY = "cur_admin-key-for-tests"
KEYS = ";".join(
    [
        format_entry("page", PAGE_KEY, {"read", "ingest"}),
        format_entry("admin", ADMIN_KEY, {"read", "ingest", "admin"}),
    ]
)


def client_for(demo_page_key: str) -> TestClient:
    settings = Settings(
        kafka_bootstrap="127.0.0.1:1",
        redis_url="redis://127.0.0.1:1/0",
        api_keys=KEYS,
        demo_page_key=demo_page_key,
    )
    return TestClient(create_app(settings))


@pytest.fixture
def client() -> Iterator[TestClient]:
    yield client_for(PAGE_KEY)


@pytest.mark.parametrize(
    ("configured", "handed_out"),
    [
        (PAGE_KEY, f'"{PAGE_KEY}"'),
        (ADMIN_KEY, "null"),  # an admin key is never handed to a page
        ("cur_not-a-configured-key", "null"),
        ("", "null"),
    ],
)
def test_demo_config_hands_out_only_a_non_admin_key(configured: str, handed_out: str) -> None:
    response = client_for(configured).get("/demo-config.js")
    assert response.status_code == 200
    assert response.text == f'window.CURRENTS_CONFIG = {{"apiKey": {handed_out}}};\n'
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/", "text/html"),
        ("/dashboard", "text/html"),
        ("/static/store.js", "text/javascript"),
        ("/static/style.css", "text/css"),
    ],
)
def test_pages_carry_a_policy_that_forbids_other_origins(
    client: TestClient, path: str, media_type: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    ["/static/../main.py", "/static/%2e%2e%2fmain.py", "/static/index.html", "/static/nope.js"],
)
def test_only_named_assets_are_served(client: TestClient, path: str) -> None:
    assert client.get(path).status_code in {404, 422}


def test_pages_load_nothing_from_elsewhere(client: TestClient) -> None:
    for path in ("/", "/dashboard"):
        html = client.get(path).text
        assert "//" not in html  # no absolute or protocol-relative URL: same origin only
