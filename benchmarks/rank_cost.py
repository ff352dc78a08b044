"""`currents bench rank`: in-process cost of learning one event with every model, and of
ranking 1,000 candidates for one user with the hybrid (p50/p99, no I/O)."""

from __future__ import annotations

import gc
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.common import bar_plot, print_table, write_results
from benchmarks.generator import SyntheticShop
from currents.settings import Settings
from online_models.base import Query
from online_models.hybrid import DEFAULT_BLEND, Hybrid, build_models
from online_models.memory import MemoryStore
from profiles.fold import fold_event
from profiles.interactions import interactions_of
from profiles.rules import ProfileRules
from schemas.events import parse_event
from schemas.profile import UserState

CANDIDATES = 1000


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(events: int, out: Path | None) -> dict[str, Any]:
    settings = Settings(kafka_bootstrap="unused:0", redis_url="redis://unused")
    models = build_models(settings)
    rules = ProfileRules.from_settings(settings)
    store = MemoryStore()
    shop = SyntheticShop(users=2000, items=3000, seed=5)
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

    hybrid = Hybrid(models, DEFAULT_BLEND)
    # The in-memory store now holds every model's state for the whole replay, a heap the
    # API never has (there the state is in Redis): keep Python's cyclic collector from
    # rescanning it during the timed ranking, as the API freezes its start-up heap.
    gc.collect()
    gc.freeze()
    items = [item.item_id for item in shop.items[:CANDIDATES]]
    rank_us: list[float] = []
    users = [u for u in states if states[u].recent][:200]
    for user in users:
        query = Query(
            user,
            now=1_790_000_000_000 + events * 5000,
            history=tuple((i, t) for i, t in states[user].recent[:20]),
        )
        fetched = store.fetch(hybrid.candidate_reads(query))
        proposals = hybrid.propose(query, fetched)
        for item in items:  # make sure there are 1,000 candidates to rank
            proposals.setdefault(item, {})
        reads = hybrid.item_reads(query, list(proposals)[:CANDIDATES])
        fetched = {**fetched, **store.fetch(reads)}
        pool = dict(list(proposals.items())[:CANDIDATES])
        started = time.perf_counter()
        hybrid.rank(query, pool, fetched, limit=100)  # serving returns at most 100
        rank_us.append((time.perf_counter() - started) * 1e6)

    gc.unfreeze()
    result = {
        "events": events,
        "learn_all_models_us_p50": round(statistics.median(learn_us), 1),
        "learn_all_models_us_p99": round(_percentile(learn_us, 0.99), 1),
        "rank_1000_candidates_ms_p50": round(statistics.median(rank_us) / 1000, 3),
        "rank_1000_candidates_ms_p99": round(_percentile(rank_us, 0.99) / 1000, 3),
    }
    path = write_results("rank", result, out)
    png = bar_plot(
        path,
        "In-process model cost",
        ["learn p50 (µs)", "rank 1k p99 (ms x100)"],
        [result["learn_all_models_us_p50"], result["rank_1000_candidates_ms_p99"] * 100],
        "us / ms x100",
    )
    print_table(
        [(k, f"{v:,}") for k, v in result.items()] + [("json", str(path)), ("plot", str(png))]
    )
    return result
