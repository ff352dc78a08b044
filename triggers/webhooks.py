"""Webhook delivery of promotions: POST the promotion JSON, retry with exponential backoff,
dead-letter what still fails.

Deliveries run as background tasks beside the worker's batches: :meth:`submit` returns at
once, at most ``concurrency`` POSTs are in flight, each bounded by ``timeout_s``; a full
queue dead-letters instead of growing without bound. A 2xx is delivered; a 5xx, a 429, a
timeout or a connection error is retried after ``backoff_s * 2**attempt``; any other 4xx
is final. Final failures go to ``dead_letter`` (the worker sends them to
``currents.promotions.dlq``). Deliveries in flight when the worker dies are lost; the
promotion itself is still on the promotions topic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson

log = logging.getLogger("currents.webhooks")

DeadLetter = Callable[[dict[str, Any], str, str, int], Awaitable[None]]
MAX_PENDING = 10_000


class WebhookDispatcher:
    def __init__(
        self,
        dead_letter: DeadLetter,
        *,
        timeout_s: float = 5.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        concurrency: int = 16,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.dead_letter = dead_letter
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_pending = max_pending
        self.slots = asyncio.Semaphore(concurrency)
        self.tasks: set[asyncio.Task[None]] = set()
        self.client: httpx.AsyncClient | None = None
        self.delivered = 0
        self.failed = 0

    def submit(self, url: str, promotion: dict[str, Any]) -> None:
        """Schedule one delivery; never blocks."""
        if len(self.tasks) >= self.max_pending:
            task = asyncio.create_task(self._give_up(promotion, url, "queue full", 0))
        else:
            task = asyncio.create_task(self._deliver(url, promotion))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, url: str, promotion: dict[str, Any]) -> None:
        if self.client is None:
            self.client = httpx.AsyncClient(timeout=self.timeout_s)
        body = orjson.dumps(promotion)
        headers = {
            "content-type": "application/json",
            "idempotency-key": str(promotion["promotion_id"]),
        }
        error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                async with self.slots:
                    response = await self.client.post(url, content=body, headers=headers)
            except httpx.HTTPError as failure:
                error = f"{type(failure).__name__}: {failure}"[:200]
                continue
            if response.is_success:
                self.delivered += 1
                return
            error = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code != 429:
                await self._give_up(promotion, url, error, attempt + 1)
                return
        await self._give_up(promotion, url, error, self.retries + 1)

    async def _give_up(
        self, promotion: dict[str, Any], url: str, error: str, attempts: int
    ) -> None:
        self.failed += 1
        log.warning(
            "webhook delivery failed",
            extra={"campaign": promotion.get("campaign_id"), "error": error, "attempts": attempts},
        )
        try:
            await self.dead_letter(promotion, url, error, attempts)
        except Exception:
            log.exception("could not dead-letter a webhook delivery")

    async def drain(self, timeout_s: float | None = None) -> None:
        """Wait for the deliveries in flight (tests, shutdown)."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=timeout_s)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.client is not None:
            await self.client.aclose()
            self.client = None


def dead_letter_value(promotion: dict[str, Any], url: str, error: str, attempts: int) -> bytes:
    """The dead-letter record: the promotion, where it was going and why it failed.
    (The URL may carry a token; only its scheme, host and path are kept.)"""
    target = httpx.URL(url)
    return orjson.dumps(
        {
            "promotion": promotion,
            "webhook": f"{target.scheme}://{target.host}:{target.port or ''}{target.path}",
            "error": error,
            "attempts": attempts,
        }
    )
