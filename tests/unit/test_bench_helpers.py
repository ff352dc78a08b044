"""Pure helpers of the benchmark toolkit: percentiles, open-loop schedules, the latency
correction, record shapes, the state digest's rounding, and the load generator's client
against an in-process HTTP stub."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from benchmarks.common import corrected_latency, latency_summary, percentile, schedule
from benchmarks.harness import (
    _round,
    batched_records,
    generate_events,
    require_loopback,
    single_records,
)
from benchmarks.loadgen import Target, build_request, closed_loop, open_loop
from benchmarks.serving_load import request_paths


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 1001)]
    assert percentile(values, 50) == 500
    assert percentile(values, 99) == 990
    assert percentile(values, 99.9) == 999
    assert percentile(values, 100) == 1000
    assert percentile([], 99) == 0.0
    assert percentile([7.0], 1) == 7.0


def test_latency_summary_reports_tail_and_max() -> None:
    summary = latency_summary([1.0] * 98 + [50.0, 400.0])
    assert summary == {"p50_ms": 1.0, "p95_ms": 1.0, "p99_ms": 50.0, "max_ms": 400.0}


def test_schedule_is_a_constant_arrival_rate() -> None:
    due = schedule(1000, 2.0)
    assert len(due) == 2000
    assert due[0] == 0.0
    assert due[1] - due[0] == pytest.approx(0.001)
    assert due[-1] == pytest.approx(1.999)


def test_latency_counts_from_the_scheduled_time() -> None:
    # A request due at t=1.0 s that could only be sent at 1.5 s and answered at 1.502 s
    # waited 502 ms, not 2 ms: the stall is charged to it.
    assert corrected_latency(1.0, 1.502) == pytest.approx(502.0)


def test_record_shapes_carry_every_event_once() -> None:
    events = generate_events(1200, users=50, items=40)
    assert len(events) == 1200
    singles = single_records(events)
    assert len(singles) == 1200
    assert all(p is None for _, _, p in singles)
    batched = batched_records(events, partitions=4)
    assert len(batched) < len(singles) / 50  # packed per partition per request
    unpacked = []
    for _, value, partition in batched:
        assert partition is not None and 0 <= partition < 4
        decoded = orjson.loads(value)
        unpacked += decoded if isinstance(decoded, list) else [decoded]
    assert sorted(e["event_id"] for e in unpacked) == sorted(e["event_id"] for e in events)


def test_digest_rounding_hides_float_addition_order_only() -> None:
    assert _round(b"0.30000000000000004") == _round(b"0.3")
    assert _round(b"0.3") != _round(b"0.31")
    assert _round(b"sku-1") == b"sku-1"


def test_load_only_goes_to_loopback() -> None:
    require_loopback("127.0.0.1:9092", "redis://localhost:6379/0")
    with pytest.raises(SystemExit, match="loopback"):
        require_loopback("10.0.0.5:9092", "redis://127.0.0.1:6379/0")
    with pytest.raises(SystemExit, match="loopback"):
        require_loopback("127.0.0.1:9092", "redis://cache.internal:6379/0")


def test_request_paths_mix_known_and_unknown_users() -> None:
    paths = request_paths(100, count=2000)
    known = sum("/v1/users/user-" in p for p in paths) / len(paths)
    assert 0.75 < known < 0.85
    assert all(p.endswith("/recommendations?n=10") for p in paths)


async def _stub_server(delay_s: float) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await asyncio.sleep(delay_s)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_open_loop_measures_a_slow_server_from_schedule() -> None:
    async def scenario() -> tuple[dict[str, object], dict[str, object]]:
        server, port = await _stub_server(0.04)
        async with server:
            target = Target("127.0.0.1", port, [build_request("127.0.0.1", port, "/x", "k")])
            opened = await open_loop(target, rate=100, duration_s=0.3)
            closed = await closed_loop(target, connections=2, duration_s=0.3)
            target.close()
        return opened, closed

    opened, closed = asyncio.run(scenario())
    assert opened["requests"] == 30
    assert opened["errors"] == 0
    assert 40 <= opened["p50_ms"] < 200  # type: ignore[operator]
    # Two connections, 40 ms per answer: at most 50 answers per second.
    assert 20 <= closed["rps"] <= 55  # type: ignore[operator]
