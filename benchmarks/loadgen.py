"""An HTTP load generator for `currents bench serving`, run in its own process.

Two modes over keep-alive HTTP/1.1 connections (a minimal client on asyncio streams with
uvloop, so the generator stays much cheaper than the server it measures):

- **open loop** at a constant arrival rate: request *i* is due at ``start + i / rate``
  whether or not earlier ones have answered, on an idle connection or a new one, and its
  latency is counted from when it was due (wrk2-style correction for coordinated
  omission: a stall is charged to every request it delayed);
- **closed loop** with C connections each sending back to back: the maximum throughput.

``python -m benchmarks.loadgen PLAN.json OUT.json`` where the plan holds ``host``,
``port``, ``api_key``, ``paths`` (cycled), ``noop_path``, ``rates``, ``step_s`` and
``connections``; the result holds one entry per rate and both maxima.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import corrected_latency, latency_summary, schedule

REQUEST_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 512


class HttpConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def get(self, request: bytes) -> int:
        """Send one pre-built GET; read the whole response; return its status."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def build_request(host: str, port: int, path: str, api_key: str) -> bytes:
    """
    >>> build_request("127.0.0.1", 80, "/healthz", "k").split(b"\\r\\n")[0]
    b'GET /healthz HTTP/1.1'
    """
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nX-API-Key: {api_key}\r\n"
        "Accept: application/json\r\n\r\n"
    ).encode()


@dataclass
class Target:
    host: str
    port: int
    requests: list[bytes]
    idle: list[HttpConnection] = field(default_factory=list)
    opened: int = 0

    async def connection(self) -> HttpConnection:
        if self.idle:
            return self.idle.pop()
        self.opened += 1
        return await HttpConnection.open(self.host, self.port)

    def close(self) -> None:
        for connection in self.idle:
            connection.close()
        self.idle.clear()


async def open_loop(target: Target, rate: float, duration_s: float) -> dict[str, Any]:
    target.close()  # the server drops idle keep-alive connections after 5 s
    clock = time.perf_counter  # uvloop's loop.time() only has millisecond resolution
    due = schedule(rate, duration_s)
    latencies: list[float] = []
    errors = 0
    in_flight = 0
    failures: Counter[str] = Counter()
    start = clock() + 0.05

    async def one(index: int, due_at: float) -> None:
        nonlocal errors, in_flight
        if in_flight >= MAX_CONNECTIONS:  # the client's own limit: count it, never queue
            errors += 1
            failures["client_limit"] += 1
            latencies.append(REQUEST_TIMEOUT_S * 1000)
            return
        in_flight += 1
        connection: HttpConnection | None = None
        try:
            connection = await target.connection()
            request = target.requests[index % len(target.requests)]
            status = await asyncio.wait_for(connection.get(request), REQUEST_TIMEOUT_S)
            latencies.append(corrected_latency(due_at, clock()))
            if status != 200:
                errors += 1
                failures[str(status)] += 1
            target.idle.append(connection)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as error:
            errors += 1
            failures[type(error).__name__] += 1
            latencies.append(REQUEST_TIMEOUT_S * 1000)
            if connection is not None:
                connection.close()
        finally:
            in_flight -= 1

    tasks = []
    for index, offset in enumerate(due):
        wait = start + offset - clock()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(index, start + offset)))
    await asyncio.gather(*tasks)
    elapsed = clock() - start
    return {
        "rps": rate,
        "achieved_rps": round(len(due) / elapsed, 1),
        "requests": len(due),
        **latency_summary(latencies),
        "errors": errors,
        "failures": dict(failures),
    }


async def closed_loop(target: Target, connections: int, duration_s: float) -> dict[str, Any]:
    done = errors = 0
    stop_at = time.monotonic() + duration_s

    async def client(offset: int) -> None:
        nonlocal done, errors
        connection = await HttpConnection.open(target.host, target.port)
        index = offset
        try:
            while time.monotonic() < stop_at:
                try:
                    status = await connection.get(target.requests[index % len(target.requests)])
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    connection.close()
                    connection = await HttpConnection.open(target.host, target.port)
                    continue
                done += 1
                errors += status != 200
                index += connections
        finally:
            connection.close()

    started = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(connections)))
    return {"rps": round(done / (time.monotonic() - started), 1), "errors": errors}


async def drain(noop: Target, limit_s: float = 15.0) -> None:
    """Wait until the server answers the no-op promptly again: an overloaded step leaves
    a backlog that must not be charged to the next one."""
    connection = await HttpConnection.open(noop.host, noop.port)
    deadline = time.perf_counter() + limit_s
    try:
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            await connection.get(noop.requests[0])
            if time.perf_counter() - sent < 0.02:
                return
            await asyncio.sleep(0.2)
    finally:
        connection.close()


async def run_plan(plan: dict[str, Any]) -> dict[str, Any]:
    host, port, key = plan["host"], plan["port"], plan["api_key"]
    reco = Target(host, port, [build_request(host, port, p, key) for p in plan["paths"]])
    noop = Target(host, port, [build_request(host, port, plan["noop_path"], key)])
    step, connections = plan["step_s"], plan["connections"]
    await open_loop(reco, 200, 1.0)  # warm-up: connections, caches
    noop_max = await closed_loop(noop, connections, step)
    reco_max = await closed_loop(reco, connections, step)
    print(f"  closed loop: reco {reco_max['rps']:,} rps, noop {noop_max['rps']:,} rps", flush=True)
    await drain(noop)
    noop_rates = [await open_loop(noop, plan["noop_rate"], step)]
    rates = []
    for rate in plan["rates"]:
        await drain(noop)
        rates.append(await open_loop(reco, rate, step))
        done = rates[-1]
        print(
            f"  open loop {rate:>6,.0f} rps: p99 {done['p99_ms']:.1f} ms {done['failures']}",
            flush=True,
        )
    reco.close()
    noop.close()
    return {"rates": rates, "noop_rates": noop_rates, "max": reco_max, "noop_max": noop_max}


def main(argv: list[str]) -> None:
    import uvloop

    plan = orjson.loads(Path(argv[0]).read_bytes())
    result = uvloop.run(run_plan(plan))
    Path(argv[1]).write_bytes(orjson.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
