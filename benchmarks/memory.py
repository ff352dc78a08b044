"""`currents bench memory`: Redis bytes per user and per item after N generated users.

Synthetic shoppers' events (several sessions per user) go through the worker's batch
logic and Redis sink (no broker needed), then every shopper's slate through the slate
refresher; then ``MEMORY USAGE`` is summed over every user's keys (the slate's share
reported) and every item's keys.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

from tqdm import tqdm

from benchmarks.common import (
    bar_plot,
    bench_servers,
    client_settings,
    print_table,
    write_results,
)
from benchmarks.generator import SyntheticShop, user_id
from currents.redis_client import AsyncRedis, create_redis, tls_options
from currents.redis_reads import fetch_reads
from schemas.events import parse_event
from streams.decode import PositionedEvent
from streams.processor import BatchInput, BatchProcessor, items_of, user_keys_of
from streams.sink import RedisSink
from streams.slates import CHUNK, SlateBuilder, SlateRefresher

BATCH = 1000


def _redis(redis_url: str, timeout_s: float = 30) -> AsyncRedis:
    tls = tls_options(redis_url, client_settings(redis_url=redis_url))
    return create_redis(redis_url, timeout_s=timeout_s, **tls)


async def _fill(redis_url: str, users: int, items: int, sessions_per_user: int, seed: int) -> int:
    settings = client_settings(bootstrap="unused:0", redis_url=redis_url)
    redis = _redis(redis_url)
    sink = RedisSink(redis)
    processor = BatchProcessor(settings)
    shop = SyntheticShop(users=users, items=items, seed=seed)
    start = 1_790_000_000_000
    events = list(shop.catalog_events(start))
    for round_index in range(sessions_per_user):
        for user in range(users):
            events += shop.session_events(
                user, start + round_index * 3_600_000 + user, identified=True
            )
    offset = itertools.count()
    with tqdm(total=len(events), desc="events", unit="ev") as bar:
        for begin in range(0, len(events), BATCH):
            chunk = [
                PositionedEvent(parse_event(raw), 0, next(offset), 0, raw)
                for raw in events[begin : begin + BATCH]
            ]
            users_state, catalog = await sink.read(user_keys_of(chunk), items_of(chunk))
            result = processor.process(BatchInput(chunk, users_state, catalog, start, {}))
            model_state = await fetch_reads(redis, processor.learn_reads(result.interactions))
            await sink.apply(result.writes + processor.learn(result.interactions, model_state))
            bar.update(len(chunk))
    # Every shopper's slate, as the worker's refresher writes them after their events.
    refresher = SlateRefresher(
        redis, SlateBuilder(settings), sink.apply, settings=settings, clock=lambda: start
    )
    ids = [user_id(u) for u in range(users)]
    with tqdm(total=len(ids), desc="slates", unit="slate") as bar:
        for begin in range(0, len(ids), CHUNK):
            await refresher.refresh(ids[begin : begin + CHUNK])
            bar.update(len(ids[begin : begin + CHUNK]))
    await redis.aclose()
    return len(events)


async def _measure(redis_url: str) -> dict[str, Any]:
    redis = _redis(redis_url)
    totals = {"user": 0, "item": 0, "global": 0, "slate": 0}
    counts = {"user": 0, "item": 0}
    async for key in redis.scan_iter(count=1000):
        text = key.decode()
        size = int(await redis.memory_usage(key, samples=0) or 0)
        kind = "user" if text.startswith("{u:") else "item" if text.startswith("{i:") else "global"
        totals[kind] += size
        if kind == "user" and text.endswith(":slate"):
            totals["slate"] += size
        if text.endswith(":profile"):
            counts["user"] += 1
        elif text.endswith(":item"):
            counts["item"] += 1
    await redis.aclose()
    return {"totals": totals, "counts": counts}


def run(
    users: int, items: int, sessions_per_user: int, seed: int, out: Path | None
) -> dict[str, Any]:
    with bench_servers(need_broker=False) as servers:
        redis_url = servers.redis_url
        asyncio.run(_flush(redis_url))
        events = asyncio.run(_fill(redis_url, users, items, sessions_per_user, seed))
        measured = asyncio.run(_measure(redis_url))
    per_user = measured["totals"]["user"] / max(1, measured["counts"]["user"])
    per_item = measured["totals"]["item"] / max(1, measured["counts"]["item"])
    per_slate = measured["totals"]["slate"] / max(1, measured["counts"]["user"])
    result = {
        "users": measured["counts"]["user"],
        "items": measured["counts"]["item"],
        "events": events,
        "bytes_per_user": round(per_user, 1),
        "slate_bytes_per_user": round(per_slate, 1),
        "slate_share": round(per_slate / per_user, 3) if per_user else 0.0,
        "bytes_per_item": round(per_item, 1),
        "global_bytes": measured["totals"]["global"],
        "target_per_user_le_2560": per_user <= 2560,
    }
    path = write_results("memory", result, out)
    png = bar_plot(path, "Redis memory", ["per user", "per item"], [per_user, per_item], "bytes")
    print_table(
        [(k, f"{v:,}") for k, v in result.items()] + [("json", str(path)), ("plot", str(png))]
    )
    return result


async def _flush(redis_url: str) -> None:
    redis = _redis(redis_url, timeout_s=2.0)
    if await redis.dbsize():
        raise SystemExit(
            "the memory benchmark needs an empty Redis database; point CURRENTS_REDIS_URL at one "
            "(e.g. redis://127.0.0.1:6379/14) or leave it unset to use an embedded one"
        )
    await redis.aclose()
