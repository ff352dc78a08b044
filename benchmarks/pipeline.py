"""`currents bench pipeline`: sustained end-to-end throughput of ONE worker process.

N generated events (catalog, then identified shoppers' sessions) are produced to a fresh
topic before anything consumes them, in two shapes: single-event records (one event per
Kafka record, as kcat sends) and batched records (what ``POST /v1/events`` sends: each
500-event request packed per partition). For each shape, in the same run:

- ``raw``: a bare aiokafka consume + decode loop (``streams.decode.decode_record``);
- ``bare_faust``: a Faust agent that only decodes, batching like the worker
  (``take_events`` with the worker's batch size and wait), in its own process;
- ``worker``: ``currents worker`` as a subprocess with a fresh group and an empty Redis
  holding the example segments and campaigns (profiles, every model, segment and trigger
  evaluation on), timed until its ``events_processed`` counter reaches N.

Every rate is timed from partition assignment (the worker's first heartbeat; the Faust
agent's rebalance; the raw loop assigns partitions itself), so start-up and group joins
are left out.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from tqdm import tqdm

from benchmarks.common import (
    bench_servers,
    client_settings,
    grouped_bar_plot,
    print_table,
    write_results,
)
from benchmarks.harness import (
    Run,
    batched_records,
    flush,
    generate_events,
    handled,
    load_definitions,
    log_root,
    new_run,
    produce,
    redis_client,
    require_empty,
    require_loopback,
    single_records,
)
from currents import keys
from currents.embedded import die_with_parent
from currents.kafka_security import client_options
from streams.decode import decode_record

SHAPES = ("single", "batched")


async def raw_rate(
    bootstrap: str, topic: str, partitions: int, events: int, timeout_s: float
) -> float:
    """Events per second of a bare aiokafka consume + decode loop (assigned partitions)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
        **client_options(client_settings(bootstrap=bootstrap)),
    )
    await consumer.start()
    decoded = 0
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        started = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        while decoded < events and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, records in batches.items():
                for record in records:
                    found, _ = decode_record(record.value, tp.partition, record.offset)
                    decoded += len(found)
        seconds = time.perf_counter() - started
    finally:
        await consumer.stop()
    return decoded / seconds


def bare_faust_rate(run: Run, events: int, timeout_s: float) -> float:
    """Events per second of a decode-only Faust agent (own process, fresh group)."""
    out = run.log_dir / f"bare-{uuid.uuid4().hex[:6]}.json"
    group = f"bench-bare-{uuid.uuid4().hex[:8]}"
    assert run.servers.bootstrap is not None
    argv = [
        sys.executable,
        "-m",
        "benchmarks.bare_faust",
        run.servers.bootstrap,
        run.settings.events_topic,
        group,
        str(events),
        str(out),
    ]
    with (run.log_dir / "bare-faust.log").open("ab") as log:
        process = subprocess.Popen(
            argv,
            env=run.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not out.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                print(f"  bare Faust agent did not finish; see\n{run.log_tail('bare-faust')}")
                return 0.0
            time.sleep(0.2)
        report = orjson.loads(out.read_bytes())
        return float(report["events"] / report["seconds"])
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def worker_rate(
    run: Run, events: int, timeout_s: float, workers: int = 1, after: int = 0
) -> dict[str, Any]:
    """Start ``workers`` worker processes on the produced topic and time them from the
    first partition assignment (their heartbeat), and once ``after`` events are handled
    (an untimed catalog, say), until N events are handled."""
    client = redis_client(run.servers.redis_url)
    for index in range(workers):
        run.spawn("worker", f"worker-{index}")
    heartbeats = keys.worker_heartbeats(run.settings.worker_group)
    started = 0.0
    done = 0
    deadline = time.monotonic() + timeout_s
    try:
        with tqdm(total=events, desc=f"{workers} worker(s)", unit="ev") as bar:
            while done < events and time.monotonic() < deadline:
                run.check_alive()
                now = handled(client)
                if not started and now >= after and client.zcard(heartbeats) >= workers:
                    started = time.perf_counter()
                bar.update(now - done)
                done = now
                time.sleep(0.05)
        seconds = time.perf_counter() - started if started else 0.0
        rate = done / seconds if seconds > 0 else 0.0
        return {"per_s": rate, "handled": done, "complete": done >= events, "seconds": seconds}
    finally:
        run.stop()
        client.close()


def run(
    events: int,
    users: int,
    items: int,
    partitions: int,
    timeout_s: float,
    out: Path | None,
) -> dict[str, Any]:
    result: dict[str, Any] = {"events": events, "partitions": partitions, "users": users}
    with bench_servers() as servers, log_root() as logs:
        assert servers.bootstrap is not None
        require_loopback(servers.bootstrap, servers.redis_url)
        require_empty(servers.redis_url)
        print(f"generating {events:,} events ({users:,} users, {items:,} items)")
        generated = generate_events(events, users, items)
        for shape in SHAPES:
            engine = new_run(servers, logs, partitions=partitions)
            records = (
                single_records(generated)
                if shape == "single"
                else batched_records(generated, partitions)
            )
            topic = engine.settings.events_topic
            asyncio.run(produce(servers.bootstrap, topic, records, desc=f"produce {shape}"))
            print(f"{shape}: {len(records):,} records; raw consumer, bare Faust, worker")
            raw = asyncio.run(raw_rate(servers.bootstrap, topic, partitions, events, timeout_s))
            bare = bare_faust_rate(engine, events, timeout_s)
            flush(servers.redis_url)
            asyncio.run(load_definitions(servers.redis_url))
            worker = worker_rate(engine, events, timeout_s)
            result[shape] = {
                "records": len(records),
                "raw_per_s": round(raw),
                "bare_faust_per_s": round(bare),
                "worker_per_s": round(worker["per_s"]),
                "worker_complete": worker["complete"],
            }
            if shape == "batched":
                # The same records once more, through a worker that writes no slates.
                off = new_run(servers, logs, partitions=partitions, CURRENTS_SLATES="false")
                asyncio.run(
                    produce(servers.bootstrap, off.settings.events_topic, records, desc="again")
                )
                flush(servers.redis_url)
                asyncio.run(load_definitions(servers.redis_url))
                without = worker_rate(off, events, timeout_s)
                result[shape]["worker_slates_off_per_s"] = round(without["per_s"])
                result[shape]["slates_on_vs_off"] = (
                    round(worker["per_s"] / without["per_s"], 3) if without["per_s"] else None
                )
        flush(servers.redis_url)
    single, batched = result["single"], result["batched"]
    result["targets"] = {
        "batched_worker_ge_10k": batched["worker_per_s"] >= 10_000,
        "single_worker_ge_half_bare_faust": single["worker_per_s"]
        >= 0.5 * single["bare_faust_per_s"],
        "slates_on_ge_0.9_off": (batched.get("slates_on_vs_off") or 0) >= 0.9,
    }
    path = write_results("pipeline", result, out)
    png = grouped_bar_plot(
        path,
        f"One worker, {events:,} events",
        groups=list(SHAPES),
        series={
            name: [float(result[s][f"{name}_per_s"]) for s in SHAPES]
            for name in ("raw", "bare_faust", "worker")
        },
        unit="events/s",
        log_scale=True,
    )
    rows = [
        (f"{shape} {name}", f"{result[shape][f'{name}_per_s']:>10,} ev/s")
        for shape in SHAPES
        for name in ("raw", "bare_faust", "worker")
    ]
    rows += [
        ("batched worker, slates off", f"{batched['worker_slates_off_per_s']:>10,} ev/s"),
        ("slates on / off", str(batched["slates_on_vs_off"])),
    ]
    rows += [(k, "met" if v else "MISSED") for k, v in result["targets"].items()]
    print_table([*rows, ("json", str(path)), ("plot", str(png))])
    return result
