"""`currents bench rank`: in-process cost of learning one event with every model, and of
ranking one shopper through the pipeline (pool, blend, reasons of a 100-item slate;
p50/p99 CPU, no I/O, replies decoded as the store layer keeps them)."""

from __future__ import annotations

import gc
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.common import bar_plot, print_table, write_results
from benchmarks.generator import SyntheticShop
from currents.settings import Settings
from online_models.base import Read
from online_models.memory import MemoryStore
from online_models.ranking import DEFAULT_BLEND, Ranker, build_models, catalog_for
from profiles.fold import fold_event
from profiles.interactions import interactions_of
from profiles.query import query_from_state
from profiles.rules import ProfileRules
from schemas.events import parse_event
from schemas.profile import UserState

SLATE_SIZE = 100


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(events: int, out: Path | None) -> dict[str, Any]:
    settings = Settings(kafka_bootstrap="unused:0", redis_url="redis://unused")
    models = build_models(settings)
    rules = ProfileRules.from_settings(settings)
    store = MemoryStore()
    # The serving benchmark's catalog and shoppers (currents bench serving).
    shop = SyntheticShop(users=2000, items=2000, seed=5)
    stream = shop.stream(1_790_000_000_000, session_gap_ms=5000)
    states: dict[str, UserState] = {}
    learn_us: list[float] = []
    for _ in range(events):
        event = parse_event(next(stream))
        state = states.setdefault(event.user_key or "", UserState())
        batch = interactions_of(
            event,
            state,
            settings.event_weights,
            {},
            pairs_per_order=settings.cooccurrence_pairs_per_order,
        )
        fold_event(state, event, rules, {})
        if not batch:
            continue
        model_reads = [store.fetch(m.learn_reads(batch)) for m in models.values()]
        started = time.perf_counter()
        writes = [
            w for m, f in zip(models.values(), model_reads, strict=True) for w in m.learn(batch, f)
        ]
        learn_us.append((time.perf_counter() - started) * 1e6 / len(batch))
        store.apply(writes)

    ranker = Ranker(models, DEFAULT_BLEND)
    catalog = catalog_for(models)
    # The in-memory store now holds every model's state for the whole replay, a heap the
    # API never has (there the state is in Redis): keep Python's cyclic collector from
    # rescanning it during the timed ranking, as the API freezes its start-up heap.
    gc.collect()
    gc.freeze()
    rank_us: list[float] = []
    pool_sizes: list[int] = []
    now = 1_790_000_000_000 + events * 5000
    users = [u for u in states if states[u].recent][:300]
    # Reads are fetched and decoded once per reply by the store layer, and shared by
    # every shopper who reads them: the worker decodes a batch's replies once for all
    # its shoppers, the API's cache keeps them across requests. The ranking itself is
    # what is timed.
    decoded: dict[Read, Any] = {}

    def replies_to(reads: list[Read]) -> dict[Read, Any]:
        decoded.update(store.decoded([r for r in reads if r not in decoded], catalog))
        return {read: decoded[read] for read in reads}

    for user in users:
        query = query_from_state(user, states[user], now)
        replies = replies_to(ranker.candidate_reads(query))
        pool = ranker.pool(query, replies, catalog, query.purchased)
        replies |= replies_to(ranker.item_reads(query, catalog.items.names_of(pool.codes)))
        started = time.perf_counter()
        pool = ranker.pool(query, replies, catalog, query.purchased)
        ranker.rank(query, pool, replies, catalog, limit=SLATE_SIZE)
        rank_us.append((time.perf_counter() - started) * 1e6)
        pool_sizes.append(len(pool))

    gc.unfreeze()
    result = {
        "events": events,
        "learn_all_models_us_p50": round(statistics.median(learn_us), 1),
        "learn_all_models_us_p99": round(_percentile(learn_us, 0.99), 1),
        "rank_one_shopper_us_p50": round(statistics.median(rank_us), 1),
        "rank_one_shopper_us_p99": round(_percentile(rank_us, 0.99), 1),
        "pool_size_p50": statistics.median(pool_sizes),
        "target_rank_p50_le_300us": statistics.median(rank_us) <= 300,
    }
    path = write_results("rank", result, out)
    png = bar_plot(
        path,
        "In-process model cost",
        ["learn p50", "rank p50", "rank p99"],
        [
            result["learn_all_models_us_p50"],
            result["rank_one_shopper_us_p50"],
            result["rank_one_shopper_us_p99"],
        ],
        "µs",
    )
    print_table(
        [(k, f"{v:,}") for k, v in result.items()] + [("json", str(path)), ("plot", str(png))]
    )
    return result
