"""The API's Kafka producer: started in the lifespan, reconnecting in the background.

The API comes up even while the broker is away: `/readyz` says so and `POST /v1/events`
answers 503 with ``Retry-After`` until the producer is connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from serving.ingest import PackedRecord

log = logging.getLogger("currents.api.producer")


class BrokerUnavailable(Exception):
    """The broker cannot take records right now."""


class EventProducer:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        idempotent: bool = False,
        send_timeout_s: float = 10.0,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        """``client_options``: TLS and SASL (:func:`currents.kafka_security.client_options`)."""
        self.bootstrap = bootstrap
        self.client_options = dict(client_options or {})
        self.idempotent = idempotent
        self.topic = topic
        self.send_timeout_s = send_timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._partitions: int | None = None
        self._connector: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._connector = asyncio.create_task(self._connect_forever())

    async def _connect_forever(self) -> None:
        delay = 0.2
        while True:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                acks="all",
                enable_idempotence=self.idempotent,
                linger_ms=2,
                request_timeout_ms=int(self.send_timeout_s * 1000),
                **self.client_options,
            )
            try:
                await producer.start()
                partitions = await producer.partitions_for(self.topic)
                if not partitions:
                    raise KafkaError(f"topic {self.topic} has no partitions yet")
                self._partitions = len(partitions)
                self._producer = producer
                log.info("producer connected", extra={"partitions": self._partitions})
                return
            except (KafkaError, OSError) as error:
                log.warning("broker not reachable yet", extra={"error": str(error)})
                with contextlib.suppress(Exception):
                    await producer.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def stop(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._producer.stop(), 5)

    @property
    def connected(self) -> bool:
        return self._producer is not None

    @property
    def partitions(self) -> int:
        if self._partitions is None:
            raise BrokerUnavailable("the producer is not connected to the broker yet")
        return self._partitions

    async def ping(self, timeout_s: float = 2.0) -> bool:
        """True when the broker answers a metadata request now."""
        if self._producer is None:
            return False
        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout_s)
            return True
        except (KafkaError, OSError, TimeoutError):
            return False

    async def send(self, records: Sequence[PackedRecord]) -> list[bool]:
        """Produce every record and wait for the broker's acks; one flag per record."""
        producer = self._producer
        if producer is None:
            raise BrokerUnavailable("the producer is not connected to the broker yet")

        async def send_one(record: PackedRecord) -> bool:
            try:
                await asyncio.wait_for(
                    producer.send_and_wait(
                        self.topic, record.value, key=record.key, partition=record.partition
                    ),
                    self.send_timeout_s,
                )
                return True
            except (KafkaError, OSError, TimeoutError) as error:
                log.warning("produce failed", extra={"error": str(error)})
                return False

        return list(await asyncio.gather(*(send_one(r) for r in records)))
