"""API security against a real API process: keys and scopes, rate limits across replicas,
body limits (with flat memory under a flood), CORS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from serving.rate_limit import RateLimiter
from tests.integration.conftest import Engine, Servers, start_engine, stop_engine

LIMIT_PER_S = 20
SHOP = "https://shop.example"


@pytest.fixture(scope="module")
def guarded(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = start_engine(
        servers,
        tmp_path_factory.mktemp("guarded"),
        CURRENTS_RATE_LIMIT_PER_S=str(LIMIT_PER_S),
        CURRENTS_CORS_ORIGINS=f'["{SHOP}"]',
    )
    yield engine
    stop_engine(engine)


@pytest.mark.parametrize(
    ("method", "path", "wrong_scope"),
    [
        ("POST", "/v1/events", "read"),
        ("GET", "/v1/users/u1/recommendations", "ingest"),
        ("GET", "/v1/users/u1/promotions", "ingest"),
        ("GET", "/v1/users/u1/profile", "read"),
        ("GET", "/v1/users/u1/export", "read"),
        ("DELETE", "/v1/users/u1", "ingest"),
        ("PUT", "/v1/campaigns/c1", "read"),
        ("GET", "/v1/segments", "ingest"),
        ("GET", "/v1/rules", "read"),
    ],
)
def test_no_key_is_401_and_a_wrong_scope_is_403(
    engine: Engine, method: str, path: str, wrong_scope: str
) -> None:
    with httpx.Client(base_url=engine.api_url, timeout=10) as client:
        assert client.request(method, path, json={}).status_code == 401
        unknown = client.request(method, path, json={}, headers={"X-API-Key": "nope"})
        assert unknown.status_code == 401
    with engine.client(wrong_scope) as client:
        assert client.request(method, path, json={}).status_code == 403


def test_rate_limit_answers_429_with_retry_after(guarded: Engine) -> None:
    # Start right after a second boundary so the burst stays inside one window.
    time.sleep(1 - time.time() % 1 + 0.01)
    statuses = []
    retry_after = None
    with guarded.client("read") as client:
        for _ in range(3 * LIMIT_PER_S):
            response = client.get("/v1/users/u1/recommendations")
            statuses.append(response.status_code)
            if response.status_code == 429:
                retry_after = response.headers.get("Retry-After")
    window_s = 2  # the burst may still cross one boundary on a slow machine
    assert statuses.count(200) <= LIMIT_PER_S * window_s
    assert statuses.count(429) >= LIMIT_PER_S
    assert set(statuses) == {200, 429}
    assert retry_after is not None and 1 <= int(retry_after) <= 1
    time.sleep(1.1)
    with guarded.client("read") as client:
        assert client.get("/v1/users/u1/recommendations").status_code == 200


def test_rate_limit_holds_across_replicas(servers: Servers, unique: str) -> None:
    """Two limiters (two API replicas) on one Redis admit at most the limit per window."""

    async def run() -> int:
        redis = aioredis.Redis.from_url(servers.redis_url)
        replicas = [RateLimiter(redis, 100), RateLimiter(redis, 100)]
        await asyncio.sleep(1 - time.time() % 1 + 0.01)
        window = int(time.time())
        allowed = 0
        for _ in range(150):
            for limiter in replicas:
                decision = await limiter.check(f"key-{unique}")
                allowed += decision.allowed
        assert int(time.time()) == window, "the loop crossed a window; machine too slow"
        await redis.aclose()
        return allowed

    assert asyncio.run(run()) == 100


def test_oversize_bodies_are_413_everywhere_and_memory_stays_flat(guarded: Engine) -> None:
    settings = guarded.settings
    api_pid = guarded.processes["api"].pid
    big_config = b'{"name": "' + b"x" * (settings.max_request_body_bytes + 10) + b'"}'
    big_events = b"[" + b" " * (settings.max_body_bytes + 10) + b"]"

    def chunks(size: int) -> Iterator[bytes]:
        block = b" " * 65_536
        for _ in range(size // len(block) + 1):
            yield block

    with guarded.client("admin") as client:
        headers = {"Content-Type": "application/json"}
        assert (
            client.put("/v1/campaigns/c1", content=big_config, headers=headers).status_code == 413
        )
        assert client.post("/v1/events", content=big_events, headers=headers).status_code == 413
        streamed = client.post(
            "/v1/segments", content=chunks(settings.max_request_body_bytes * 4), headers=headers
        )
        assert streamed.status_code in {405, 413}  # no POST route there; never a 200/500
        streamed = client.put(
            "/v1/rules/r1", content=chunks(settings.max_request_body_bytes * 4), headers=headers
        )
        assert streamed.status_code == 413

        rss_before = _rss_kib(api_pid)
        for round_ in range(150):
            client.post("/v1/events", content=big_events, headers=headers)
            if round_ % 3 == 0:
                client.put("/v1/rules/r1", content=chunks(settings.max_body_bytes), headers=headers)
        rss_after = _rss_kib(api_pid)
    assert rss_after - rss_before < 32 * 1024, (rss_before, rss_after)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_cors_allows_only_configured_origins(guarded: Engine, engine: Engine) -> None:
    preflight = {
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "X-API-Key",
    }
    with httpx.Client(base_url=guarded.api_url, timeout=10) as client:
        allowed = client.options(
            "/v1/users/u1/recommendations", headers={"Origin": SHOP, **preflight}
        )
        assert allowed.headers.get("access-control-allow-origin") == SHOP
        denied = client.options(
            "/v1/users/u1/recommendations", headers={"Origin": "https://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in denied.headers
    with httpx.Client(base_url=engine.api_url, timeout=10) as client:  # default: no CORS
        response = client.options(
            "/v1/users/u1/recommendations", headers={"Origin": SHOP, **preflight}
        )
        assert "access-control-allow-origin" not in response.headers


def test_concurrent_requests_under_the_limit_are_all_admitted(
    servers: Servers, unique: str
) -> None:
    """Many requests arriving together share one lease instead of each leasing a block."""

    async def run() -> list[bool]:
        redis = aioredis.Redis.from_url(servers.redis_url)
        limiter = RateLimiter(redis, 1000)
        await asyncio.sleep(1 - time.time() % 1 + 0.01)
        decisions = await asyncio.gather(*(limiter.check(f"c-{unique}") for _ in range(300)))
        await redis.aclose()
        return [d.allowed for d in decisions]

    assert all(asyncio.run(run()))
