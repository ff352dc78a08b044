"""A bare Faust agent that only decodes: the reference the worker is measured against.

Run as ``python -m benchmarks.bare_faust BOOTSTRAP TOPIC GROUP EVENTS OUT``: it consumes
``TOPIC`` in batches the way the worker does (``take_events`` with the worker's batch size
and wait), decodes every record with the worker's decoder, and when ``EVENTS`` events have
been decoded writes ``{"events", "seconds"}`` (timed from partition assignment) to ``OUT``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import faust
import orjson

from currents.kafka_security import faust_credentials
from currents.settings import Settings
from streams.app import faust_broker_url
from streams.decode import decode_record


def main(argv: list[str]) -> None:
    bootstrap, topic_name, group, wanted, out = argv
    target = int(wanted)
    settings = Settings()
    app = faust.App(
        group,
        broker=faust_broker_url(bootstrap),
        broker_credentials=faust_credentials(settings),
        store="memory://",
        web_enabled=False,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=0.5,
    )
    topic = app.topic(topic_name, value_serializer="raw", key_serializer="raw")
    seen = {"events": 0, "first": 0.0}

    @app.agent(topic, name="bare")
    async def decode_only(stream: faust.StreamT[bytes]) -> None:
        async for batch in stream.take_events(  # type: ignore[attr-defined]
            settings.worker_batch_size, within=settings.worker_batch_within_s
        ):
            for event in batch:
                decoded, _ = decode_record(
                    event.value, event.message.partition, event.message.offset
                )
                seen["events"] += len(decoded)
            if seen["events"] >= target:
                seconds = time.perf_counter() - seen["first"]
                report = orjson.dumps({"events": seen["events"], "seconds": seconds})
                Path(out).write_bytes(report)  # noqa: ASYNC240 - once, a few bytes
                seen["events"] = -(10**12)  # report once

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def assigned(sender: object, **_: object) -> None:
        seen["first"] = seen["first"] or time.perf_counter()  # the clock starts here

    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1:])
