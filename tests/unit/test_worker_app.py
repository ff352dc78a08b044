"""The worker's Faust app is configured from settings down to the Kafka consumer."""

from __future__ import annotations

import asyncio

from currents.settings import Settings
from streams.app import create_app


def test_consumer_fetch_wait_comes_from_settings(tmp_path: object) -> None:
    async def built_consumer_wait() -> int:
        settings = Settings(
            kafka_bootstrap="127.0.0.1:9",
            redis_url="redis://127.0.0.1:9/0",
            data_dir=tmp_path,
            worker_fetch_max_wait_ms=77,
        )
        app = create_app(settings)
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
        wait: int = consumer._fetch_max_wait_ms
        await consumer.stop()  # never started: only releases the client
        return wait

    # Faust's own default is 1,500 ms, a latency floor on brokers that do not answer a
    # waiting fetch early (Tansu).
    assert asyncio.run(built_consumer_wait()) == 77
