"""Webhook delivery against a real HTTP receiver on 127.0.0.1: delivered, retried after
500s with exponential backoff, dead-lettered after the last retry; and through the real
worker, onto the promotions dead-letter topic."""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from tests.integration.conftest import Engine, poll
from triggers.webhooks import WebhookDispatcher


class Receiver:
    """A tiny HTTP server: answers each POST with the next scripted status (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.requests: list[tuple[float, dict[str, Any], dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(
                    (
                        time.monotonic(),
                        orjson.loads(body),
                        {k.lower(): v for k, v in self.headers.items()},
                    )
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


PROMOTION = {"promotion_id": "p1", "campaign_id": "c", "user_id": "u", "message": "hi"}


def dispatch(url: str, **options: Any) -> tuple[WebhookDispatcher, list[tuple[Any, ...]]]:
    letters: list[tuple[Any, ...]] = []

    async def dead_letter(promotion: dict[str, Any], url: str, error: str, attempts: int) -> None:
        letters.append((promotion["promotion_id"], error, attempts))

    async def run() -> WebhookDispatcher:
        dispatcher = WebhookDispatcher(dead_letter, timeout_s=2, **options)
        dispatcher.submit(url, PROMOTION)
        await dispatcher.drain(timeout_s=20)
        await dispatcher.close()
        return dispatcher

    return asyncio.run(run()), letters


def test_delivered(receiver: Receiver) -> None:
    dispatcher, letters = dispatch(receiver.url)
    assert dispatcher.delivered == 1 and letters == []
    ((_, body, headers),) = receiver.requests
    assert body == PROMOTION
    assert headers["content-type"] == "application/json"
    assert headers["idempotency-key"] == "p1"


def test_retried_after_500s_with_growing_backoff(receiver: Receiver) -> None:
    receiver.statuses = [500, 503, 500]
    dispatcher, letters = dispatch(receiver.url, retries=4, backoff_s=0.1)
    assert dispatcher.delivered == 1 and letters == []
    times = [t for t, _, _ in receiver.requests]
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4  # 0.1 * 2**attempt


def test_dead_lettered_after_exhausting_retries(receiver: Receiver) -> None:
    receiver.statuses = [500] * 10
    dispatcher, letters = dispatch(receiver.url, retries=2, backoff_s=0.05)
    assert len(receiver.requests) == 3
    assert dispatcher.delivered == 0
    assert letters == [("p1", "HTTP 500", 3)]


def test_a_client_error_is_final_and_an_unreachable_host_is_retried(receiver: Receiver) -> None:
    receiver.statuses = [404]
    _, letters = dispatch(receiver.url, retries=3, backoff_s=0.05)
    assert len(receiver.requests) == 1 and letters == [("p1", "HTTP 404", 1)]
    _, letters = dispatch(closed_port_url(), retries=2, backoff_s=0.05)
    assert [(pid, attempts) for pid, _, attempts in letters] == [("p1", 3)]
    assert letters[0][1].startswith("ConnectError")


def test_slow_receivers_do_not_block_the_event_loop(receiver: Receiver) -> None:
    """Many deliveries to an unreachable host: submit returns at once and the loop stays
    responsive while they retry."""

    async def run() -> tuple[float, float]:
        async def dead_letter(*_: Any) -> None:
            pass

        dispatcher = WebhookDispatcher(dead_letter, timeout_s=1, retries=1, backoff_s=0.2)
        started = time.perf_counter()
        for index in range(200):
            dispatcher.submit(closed_port_url(), {**PROMOTION, "promotion_id": str(index)})
        submitted = time.perf_counter() - started
        tick = time.perf_counter()
        await asyncio.sleep(0.01)
        lag = time.perf_counter() - tick - 0.01
        await dispatcher.drain(timeout_s=20)
        await dispatcher.close()
        return submitted, lag

    submitted, lag = asyncio.run(run())
    assert submitted < 0.5 and lag < 0.5


def test_through_the_worker_delivered_and_dead_lettered(
    engine: Engine, unique: str, receiver: Receiver
) -> None:
    receiver.statuses = [500]  # the first attempt fails; the retry lands
    campaigns = {  # id -> (trigger event, webhook)
        f"hook-{unique}": ("product_favorited", receiver.url),
        f"dead-{unique}": ("product_shared", closed_port_url()),
    }
    with engine.client("admin") as client:
        for campaign_id, (event_type, url) in campaigns.items():
            body = {
                "name": campaign_id,
                "trigger": {"type": "event", "event_type": event_type},
                "action": {
                    "message": "Saved {user_id}",
                    "channels": ["onsite", "webhook"],
                    "webhook_url": url,
                },
                "guardrails": {"holdout": 0},
            }
            assert client.put(f"/v1/campaigns/{campaign_id}", json=body).status_code == 201
    try:
        time.sleep(1.5)  # workers reload campaigns within a second
        user = f"hooked-{unique}"
        now = int(time.time() * 1000)

        def event(kind: str, offset: int, **properties: Any) -> dict[str, Any]:
            return {
                "event_id": f"{user}-{kind}",
                "type": kind,
                "user_id": user,
                "timestamp": now + offset,
                "properties": properties,
            }

        consent = event("identify", 0, traits={"marketing_consent": True})
        assert engine.post_events([consent]).status_code == 202
        favorite = event("product_favorited", 1, product_id=f"p-{unique}")
        assert engine.post_events([favorite]).status_code == 202
        poll(lambda: len(receiver.requests) >= 2, timeout_s=20, what="the webhook retry")
        bodies = [body for _, body, _ in receiver.requests]
        assert bodies[0] == bodies[1]  # the same promotion, retried
        assert bodies[0]["campaign_id"] == f"hook-{unique}" and bodies[0]["user_id"] == user
        share = event("product_shared", 2, product_id=f"p-{unique}")
        assert engine.post_events([share]).status_code == 202
        # The other campaign's receiver is down: after its retries (0.5+1+2+4 s), the DLQ.
        letters = poll(
            lambda: [
                orjson.loads(v)
                for v in engine.consume_all(engine.settings.promotions_dlq_topic, 1.5)
                if orjson.loads(v)["promotion"]["user_id"] == user
            ],
            timeout_s=30,
            what="the dead-lettered webhook delivery",
        )
        assert [letter["promotion"]["campaign_id"] for letter in letters] == [f"dead-{unique}"]
        assert letters[0]["attempts"] == engine.settings.webhook_retries + 1
        assert letters[0]["error"].startswith("ConnectError")
    finally:
        with engine.client("admin") as client:
            for campaign_id in campaigns:
                client.delete(f"/v1/campaigns/{campaign_id}")
