"""`currents generate`: send synthetic shoppers' events (or, with ``--shape
heavy-baskets``, grocery orders of 1-80 lines) at a fixed rate, to the topic or over
HTTP, with a progress bar. Load goes only to the configured loopback servers."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from tqdm import tqdm

from benchmarks.generator import SyntheticShop
from benchmarks.heavy_baskets import HeavyBasketShop
from schemas.events import partition_key

TICK_S = 0.05


@dataclass
class TrafficOptions:
    rate: float
    duration_s: float  # 0 runs until interrupted
    users: int = 1000
    items: int = 500
    seed: int = 7
    target: str = "kafka"  # or "http"
    bootstrap: str | None = None
    topic: str = "currents.events"
    api_url: str | None = None
    api_key: str | None = None
    progress: bool = True
    shape: str = "shoppers"  # or "heavy-baskets": every event an order
    # TLS and SASL to the broker (currents.kafka_security.client_options).
    kafka_options: dict[str, Any] = field(default_factory=dict)


class KafkaTarget:
    def __init__(self, bootstrap: str, topic: str, kafka_options: dict[str, Any]) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=5, **kafka_options
        )
        self.topic = topic

    async def start(self) -> None:
        await self.producer.start()

    async def send(self, events: list[dict[str, Any]]) -> int:
        for event in events:
            await self.producer.send(
                self.topic, orjson.dumps(event), key=partition_key(event).encode()
            )
        await self.producer.flush()
        return len(events)

    async def stop(self) -> None:
        await self.producer.stop()


class HttpTarget:
    def __init__(self, api_url: str, api_key: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=api_url, headers={"X-API-Key": api_key}, timeout=10
        )

    async def start(self) -> None:
        return None

    async def send(self, events: list[dict[str, Any]]) -> int:
        sent = 0
        for start in range(0, len(events), 500):
            chunk = events[start : start + 500]
            body = orjson.dumps(chunk)
            while True:
                response = await self.client.post(
                    "/v1/events", content=body, headers={"Content-Type": "application/json"}
                )
                if response.status_code != 503:
                    break
                # Back-pressure: the same request again once the API asks for it.
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
            if response.status_code == 202:
                sent += response.json()["accepted"]
            else:
                raise RuntimeError(
                    f"POST /v1/events answered {response.status_code}: {response.text[:200]}"
                )
        return sent

    async def stop(self) -> None:
        await self.client.aclose()


async def run_traffic(options: TrafficOptions) -> int:
    """Send the catalog, then sessions at ``rate`` events/s; returns events sent."""
    target: KafkaTarget | HttpTarget
    if options.target == "kafka":
        if not options.bootstrap:
            raise ValueError("--target kafka needs CURRENTS_KAFKA_BOOTSTRAP")
        target = KafkaTarget(options.bootstrap, options.topic, options.kafka_options)
    else:
        if not options.api_url or not options.api_key:
            raise ValueError("--target http needs --api-url and --api-key")
        target = HttpTarget(options.api_url, options.api_key)
    shop: SyntheticShop | HeavyBasketShop
    if options.shape == "heavy-baskets":
        shop = HeavyBasketShop(customers=options.users, items=options.items, seed=options.seed)
    else:
        shop = SyntheticShop(users=options.users, items=options.items, seed=options.seed)
    await target.start()
    sent = 0
    bar = tqdm(desc="events", unit="ev", disable=not options.progress, mininterval=0.5)
    try:
        now_ms = int(time.time() * 1000)
        sent += await target.send(shop.catalog_events(now_ms))
        bar.update(sent)
        sessions = (
            shop.stream(now_ms, warm_up_users=10)
            if isinstance(shop, SyntheticShop)
            else shop.stream(now_ms)
        )
        started = time.monotonic()
        budget = 0.0
        while options.duration_s <= 0 or time.monotonic() - started < options.duration_s:
            tick_started = time.monotonic()
            budget += options.rate * TICK_S
            count = int(budget)
            budget -= count
            if count:
                now_ms = int(time.time() * 1000)
                events = [dict(e, timestamp=now_ms) for e in islice(sessions, count)]
                delivered = await target.send(events)
                sent += delivered
                bar.update(delivered)
            await asyncio.sleep(max(0.0, TICK_S - (time.monotonic() - tick_started)))
    finally:
        bar.close()
        await target.stop()
    return sent
