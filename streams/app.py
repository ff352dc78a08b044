"""The Faust application: one agent consumes `currents.events` in batches.

Built by :func:`create_app` from settings (no module-level app, no module-level
clients). The agent's state lives in Redis, never in module globals.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from currents import keys
from currents.kafka_security import faust_credentials
from currents.partitioning import partition_for
from currents.redis_client import AsyncRedis, create_redis, tls_options
from currents.settings import Settings
from schemas.profile import UserState
from serving.config_store import ConfigStore
from streams.handler import BatchHandler, RawRecord
from streams.offsets import plan_commits
from streams.processor import BatchProcessor, Outbound
from streams.sink import RedisSink, complete_journals
from streams.slates import SlateBuilder, SlateRefresher

log = logging.getLogger("currents.worker")
# Ingest counts as behind (slates then yield) once its newest record is this old.
BEHIND_S = 0.25


class _ShortFetchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Faust hard-codes a 1.5 s fetch wait. A broker that answers a fetch only when the
        # wait ends (Tansu does, whatever arrives meanwhile) adds up to that much to every
        # event's latency; a Kafka broker answers as soon as data arrives either way.
        consumer._fetch_max_wait_ms = cast(CurrentsApp, self.app).fetch_max_wait_ms
        return consumer


class _ShortFetchConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ShortFetchConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _ShortFetchTransport(faust_aiokafka.Transport):
    Consumer = _ShortFetchConsumer


class CurrentsApp(faust.App):
    """A Faust app that lets Redis correct the committed offsets of newly assigned
    partitions before Faust seeks to them (streams/offsets.py), and whose consumer waits
    at most ``fetch_max_wait_ms`` for a fetch to fill."""

    before_assignment: Callable[[set[Any]], Awaitable[None]] | None = None
    fetch_max_wait_ms: int = 50

    def _new_transport(self) -> Any:
        return _ShortFetchTransport(self.conf.broker_consumer, self)

    async def _on_partitions_assigned(self, assigned: set[Any], generation_id: int = 0) -> None:
        if self.before_assignment is not None and assigned and not self.should_stop:
            try:
                await self.before_assignment(assigned)
            except Exception as error:  # dedup still guards; never fail the rebalance
                log.warning("offset sync failed", extra={"error": repr(error)[:200]})
        await super()._on_partitions_assigned(assigned, generation_id)


def worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def faust_broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip())


def create_app(settings: Settings) -> faust.App:
    bootstrap, redis_url = settings.require_servers()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = CurrentsApp(
        settings.worker_group,
        broker=faust_broker_url(bootstrap),
        broker_credentials=faust_credentials(settings),
        store="memory://",
        datadir=str(settings.data_dir / "faust"),
        web_enabled=False,  # no table endpoints, no web server at all
        topic_partitions=settings.events_partitions,
        topic_allow_declare=False,  # `currents up` / the operator creates topics
        consumer_auto_offset_reset="earliest",
        # A short session lets the group converge in seconds after a member dies.
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=6.0,
        broker_commit_interval=0.5,
        producer_acks=-1,
        stream_wait_empty=True,
    )
    app.fetch_max_wait_ms = settings.worker_fetch_max_wait_ms
    events_topic = app.topic(
        settings.events_topic,
        value_serializer="raw",
        key_serializer="raw",
        partitions=settings.events_partitions,
    )
    me = worker_id()
    heartbeat_key = keys.worker_heartbeats(settings.worker_group)
    resources: dict[str, Any] = {}

    def redis() -> AsyncRedis:
        if "redis" not in resources:
            # The worker's timeout only measures the network: its compute never keeps the
            # loop busy past CURRENTS_WORKER_MAX_BLOCK_MS (streams/budget.py).
            resources["redis"] = create_redis(
                redis_url,
                timeout_s=settings.worker_redis_timeout_s,
                **tls_options(redis_url, settings),
            )
        return resources["redis"]

    async def send(messages: Sequence[Outbound]) -> None:
        # Straight to the producer (the topics come from currents.topics.ensure_topics): a
        # Topic.send per message costs Faust's channel and callback machinery for the same
        # records (raw bytes, default partitioner).
        producer = app.producer
        for message in messages:
            await producer.send(message.topic, message.key or None, message.value, None, None, None)
        await producer.flush()

    def owned_partitions() -> set[int]:
        assignment = app.consumer.assignment() if app.consumer else set()
        return {tp.partition for tp in assignment if tp.topic == settings.events_topic}

    def owns(user_id: str, state: UserState) -> bool:
        partition = state.partition
        if partition is None:
            partition = partition_for(user_id, settings.events_partitions)
        return partition in owned_partitions()

    progress_key = keys.consumer_progress(settings.worker_group, settings.events_topic)

    async def sync_offsets(assigned: set[Any]) -> None:
        ours = sorted(
            (tp for tp in assigned if tp.topic == settings.events_topic), key=lambda t: t.partition
        )
        if not ours:
            return
        # A part a worker began to land and did not finish carries progress in its last
        # call: finish it before reading where the partitions stand.
        await complete_journals(redis())
        raw = await redis().hmget(progress_key, [str(tp.partition) for tp in ours])
        applied = {tp.partition: int(v) for tp, v in zip(ours, raw, strict=True) if v is not None}
        if not applied:
            return
        consumer: Any = app.consumer
        committed_by_tp = await consumer.seek_to_committed()
        by_partition = {tp.partition: tp for tp in ours}
        committed = {
            tp.partition: committed_by_tp.get(tp) for tp in ours if tp.partition in applied
        }
        commits, forget = plan_commits(committed, applied)
        if forget:
            log.warning(
                "broker has no commits where redis has progress; assuming recreated topics",
                extra={"partitions": forget},
            )
            await redis().hdel(progress_key, *(str(p) for p in forget))
        if commits:
            await consumer._thread.commit({by_partition[p]: o for p, o in commits.items()})
            log.info(
                "committed offsets moved to what redis holds",
                extra={
                    "moves": {p: [committed[p], offset] for p, offset in commits.items()},
                },
            )

    app.before_assignment = sync_offsets

    def handler() -> BatchHandler:
        if "handler" not in resources:
            compute = ThreadPoolExecutor(1, thread_name_prefix="currents-compute")
            sink = RedisSink(redis(), settings.pseudonym_key)
            created = resources["handler"] = BatchHandler(
                sink,
                BatchProcessor(settings),
                send,
                dlq_topic=settings.dlq_topic,
                source_topic=settings.events_topic,
                progress_key=progress_key,
                max_block_s=settings.worker_max_block_ms / 1000,
                batch_cost=settings.worker_batch_cost,
                compute=compute,
                max_script_s=settings.worker_max_script_ms / 1000,
            )
            config = resources["config"] = ConfigStore(redis())
            if not settings.slates:
                return created
            created.slates = SlateRefresher(
                redis(),
                SlateBuilder(settings),
                sink.apply,
                settings=settings,
                experiment=config.active_experiment,
                backlogged=lambda: resources.get("backlogged", False),
                owned_partitions=owned_partitions,
                compute=compute,
            )
        return resources["handler"]

    async def start_slates(batch_handler: BatchHandler) -> None:
        if "slates" in resources or batch_handler.slates is None:
            return
        await resources["config"].start()
        resources["slates"] = asyncio.ensure_future(batch_handler.slates.run())

    @app.agent(events_topic, name="events")
    async def process_events(stream: faust.StreamT[bytes]) -> None:
        batch_handler = handler()
        await batch_handler.refresh(owns)
        await start_slates(batch_handler)
        async for batch in stream.take_events(  # type: ignore[attr-defined]
            settings.worker_batch_size, within=settings.worker_batch_within_s
        ):
            records = [RawRecord(e.value, e.message.partition, e.message.offset) for e in batch]
            stats = await batch_handler.handle(records)
            # Ingest is behind when the newest record of the batch just handled was
            # produced a while ago: then slates take only their share of the worker.
            newest = max((e.message.timestamp or 0.0) for e in batch) if batch else 0.0
            resources["backlogged"] = bool(batch) and time.time() - newest > BEHIND_S
            log.debug("batch applied", extra=asdict(stats))

    async def sweep_once() -> None:
        try:
            await handler().refresh(owns)
            swept = await handler().sweep(owns)
            if swept:
                log.info("sweep re-evaluated profiles", extra={"users": swept})
        except Exception as error:  # the next tick retries; never take the worker down
            log.warning("sweep failed", extra={"error": type(error).__name__})

    @app.timer(settings.sweep_interval_s)
    async def sweep() -> None:
        # The sweep waits for the handler's lock (one writer per user), which a part of a
        # busy batch holds for a while: it runs as a task of its own, one at a time, so
        # the timer keeps its schedule instead of overlapping itself.
        if not owned_partitions():
            return
        running = resources.get("sweep")
        if running is None or running.done():
            resources["sweep"] = asyncio.ensure_future(sweep_once())

    async def beat() -> None:
        if owned_partitions():
            await redis().zadd(heartbeat_key, {me: int(time.time() * 1000)})

    @app.timer(settings.worker_heartbeat_s)
    async def heartbeat() -> None:
        try:
            await beat()
        except Exception as error:  # a heartbeat must never take the worker down
            log.warning("heartbeat failed", extra={"error": type(error).__name__})

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def on_rebalanced(sender: Any, **_: Any) -> None:
        log.info("partitions assigned", extra={"partitions": sorted(owned_partitions())})
        try:
            await beat()
        except Exception as error:
            log.warning("heartbeat failed", extra={"error": type(error).__name__})

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: Any, **_: Any) -> None:
        try:
            await redis().zrem(heartbeat_key, me)
        except Exception as error:
            log.warning("heartbeat removal failed", extra={"error": type(error).__name__})

    app.currents_resources = resources  # type: ignore[attr-defined]
    return app
