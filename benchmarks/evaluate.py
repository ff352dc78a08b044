"""`currents evaluate`: prequential evaluation of every model, the hybrid and baselines.

For each event of a time-ordered log: first recommend 10 items for that user (excluding
items they already interacted with) and score the hit, then learn the event. The models,
the profile fold that feeds them and the query they answer are the engine's own code,
running on an in-process store with Redis semantics.

Logs are CSV or TSV with a header naming user, item and timestamp columns, plus optional
type and value columns (``user_id:token``-style headers work too).
"""

from __future__ import annotations

import csv
import math
import statistics
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from benchmarks.common import print_table, write_results
from benchmarks.generator import SyntheticShop
from currents.settings import Settings
from online_models.base import Interaction
from online_models.matrix_factorization import NaiveRiverModel
from online_models.memory import MemoryStore
from online_models.ranking import DEFAULT_BLEND, Ranker, build_models, catalog_for
from profiles.fold import fold_event
from profiles.interactions import interactions_of
from profiles.query import query_from_state
from profiles.rules import ProfileRules
from schemas.events import parse_event
from schemas.profile import UserState

K = 10
SINGLE_MODELS = ("cooccurrence", "session", "mf", "content", "trending")
COLUMN_NAMES = {
    "user": ("user", "user_id", "userid", "visitorid", "customer_id"),
    "item": ("item", "item_id", "itemid", "movieid", "product_id", "sku"),
    "timestamp": ("timestamp", "ts", "time", "event_time", "datetime"),
    "type": ("type", "event", "event_type"),
    "value": ("value", "rating", "weight"),
}
TYPE_ALIASES = {
    "view": "product_viewed",
    "addtocart": "product_added",
    "transaction": "order_completed",
    "purchase": "order_completed",
    "click": "product_clicked",
}


@dataclass
class LogRow:
    user: str
    item: str
    ts: int
    kind: str = "product_viewed"
    value: float | None = None


def _column(header: list[str], role: str) -> int | None:
    cleaned = [h.split(":")[0].strip().lower() for h in header]
    for name in COLUMN_NAMES[role]:
        if name in cleaned:
            return cleaned.index(name)
    return None


def read_log(path: Path, min_value: float | None = None) -> list[LogRow]:
    """Rows of a CSV/TSV log, sorted by time (stable: ties keep file order)."""
    with path.open(newline="") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader)
        columns = {role: _column(header, role) for role in COLUMN_NAMES}
        missing = [role for role in ("user", "item", "timestamp") if columns[role] is None]
        if missing:
            raise SystemExit(f"{path}: no {', '.join(missing)} column in header {header}")
        rows = []
        for record in reader:
            if not record:
                continue
            raw_ts = float(record[columns["timestamp"]])  # type: ignore[index]
            ts = int(raw_ts * 1000) if raw_ts < 1e11 else int(raw_ts)  # seconds or ms
            kind = "product_viewed"
            if columns["type"] is not None:
                kind = TYPE_ALIASES.get(record[columns["type"]].lower(), record[columns["type"]])
            value = float(record[columns["value"]]) if columns["value"] is not None else None
            if min_value is not None and value is not None and value < min_value:
                continue
            rows.append(LogRow(record[columns["user"]], record[columns["item"]], ts, kind, value))  # type: ignore[index]
    rows.sort(key=lambda r: r.ts)
    return rows


def synthetic_log(events: int, users: int = 2000, items: int = 400, seed: int = 11) -> list[LogRow]:
    """Views, adds and purchases of synthetic shoppers, one session every few seconds."""
    shop = SyntheticShop(users=users, items=items, seed=seed)
    rows: list[LogRow] = []
    stream = shop.stream(1_790_000_000_000, session_gap_ms=20_000)
    while len(rows) < events:
        raw = next(stream)
        user = raw.get("user_id")
        if not user:
            continue
        if raw["type"] in {"product_viewed", "product_added"}:
            rows.append(
                LogRow(user, raw["properties"]["product_id"], raw["timestamp"], raw["type"])
            )
        elif raw["type"] == "order_completed":
            for line in raw["properties"]["products"]:
                rows.append(LogRow(user, line["product_id"], raw["timestamp"], "order_completed"))
    return rows[:events]


class Baseline(Protocol):
    name: str

    def learn(self, row: LogRow) -> None: ...

    def recommend(self, user: str, seen: set[str]) -> list[str]: ...


class PopularityBaseline:
    name = "baseline_popularity"

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def learn(self, row: LogRow) -> None:
        self.counts[row.item] += 1

    def recommend(self, user: str, seen: set[str]) -> list[str]:
        return [item for item, _ in self.counts.most_common(K + len(seen)) if item not in seen][:K]


class CooccurrenceBaseline:
    """Plain item co-occurrence counts over each user's last 20 items."""

    name = "baseline_cooccurrence"

    def __init__(self, window: int = 20) -> None:
        self.pairs: dict[str, Counter[str]] = {}
        self.recent: dict[str, deque[str]] = {}
        self.window = window

    def learn(self, row: LogRow) -> None:
        recent = self.recent.setdefault(row.user, deque(maxlen=self.window))
        for other in recent:
            if other != row.item:
                self.pairs.setdefault(row.item, Counter())[other] += 1
                self.pairs.setdefault(other, Counter())[row.item] += 1
        recent.appendleft(row.item)

    def recommend(self, user: str, seen: set[str]) -> list[str]:
        totals: Counter[str] = Counter()
        for item in self.recent.get(user, ()):
            totals.update(self.pairs.get(item, {}))
        return [item for item, _ in totals.most_common(K + len(seen)) if item not in seen][:K]


class NaiveRiverBaseline:
    """River FunkMF / BiasedMF trained on positives only, ranking every known item."""

    def __init__(self, kind: str) -> None:
        self.model = NaiveRiverModel(kind)
        self.name = self.model.name

    def learn(self, row: LogRow) -> None:
        self.model.river.learn_one(row.user, row.item, 1.0)
        self.model.items.add(row.item)

    def recommend(self, user: str, seen: set[str]) -> list[str]:
        items = [i for i in self.model.items if i not in seen]
        if not items:
            return []
        river = self.model.river
        if user not in river.u_latents:
            return []
        user_vector = river.u_latents[user]
        matrix = np.stack([river.i_latents[i] for i in items])
        scores = matrix @ user_vector
        if hasattr(river, "i_biases"):
            scores = scores + np.array([river.i_biases[i] for i in items])
        top = np.argsort(-scores, kind="stable")[:K]
        return [items[i] for i in top]


@dataclass
class Tally:
    hits: int = 0
    ndcg: float = 0.0
    asked: int = 0
    recommended: set[str] = field(default_factory=set)
    rank_us: list[float] = field(default_factory=list)
    learn_us: list[float] = field(default_factory=list)

    def record(self, ranked: list[str], target: str, micros: float) -> None:
        self.asked += 1
        self.rank_us.append(micros)
        self.recommended.update(ranked)
        if target in ranked:
            self.hits += 1
            self.ndcg += 1.0 / math.log2(ranked.index(target) + 2)

    def summary(self, catalog: int) -> dict[str, float]:
        asked = max(1, self.asked)
        return {
            "hr_at_10": round(self.hits / asked, 4),
            "ndcg_at_10": round(self.ndcg / asked, 4),
            "coverage": round(len(self.recommended) / max(1, catalog), 4),
            "learn_us_p50": round(statistics.median(self.learn_us), 1) if self.learn_us else 0.0,
            "rank_us_p50": round(statistics.median(self.rank_us), 1) if self.rank_us else 0.0,
        }


def _events(rows: list[LogRow]) -> Iterator[tuple[int, LogRow, Any]]:
    for index, row in enumerate(rows):
        properties: dict[str, Any] = {"product_id": row.item}
        if row.kind == "order_completed":
            properties = {
                "order_id": f"o{index}",
                "revenue": 1.0,
                "currency": "EUR",
                "products": [{"product_id": row.item, "price": 1.0}],
            }
        elif row.kind in {"product_added", "product_removed"}:
            properties |= {"price": 1.0, "quantity": 1}
        raw = {
            "event_id": f"e{index}",
            "type": row.kind,
            "user_id": row.user,
            "session_id": None,
            "timestamp": row.ts,
            "properties": properties,
        }
        yield index, row, parse_event(raw)


def evaluate(
    rows: list[LogRow], every: int = 1, progress: bool = True
) -> dict[str, dict[str, float]]:
    settings = Settings(kafka_bootstrap="unused:0", redis_url="redis://unused")
    rules = ProfileRules.from_settings(settings)
    models = build_models(settings)
    store = MemoryStore()
    catalog = catalog_for(models)
    # Single models rank the pool every model proposes (one alone proposes too little to
    # compare); the hybrid ranks exactly as the engine does.
    everything = Ranker(models, {name: 1.0 for name in models})
    hybrid = Ranker(models, DEFAULT_BLEND)
    configs = {name: Ranker(models, {name: 1.0}) for name in SINGLE_MODELS}
    configs["hybrid"] = hybrid
    baselines: list[Baseline] = [
        PopularityBaseline(),
        CooccurrenceBaseline(),
        NaiveRiverBaseline("funk"),
        NaiveRiverBaseline("biased"),
    ]
    tallies = {name: Tally() for name in [*configs, *(b.name for b in baselines)]}
    states: dict[str, UserState] = {}
    seen: dict[str, set[str]] = {}
    catalog_size = len({r.item for r in rows})

    for index, row, event in tqdm(
        _events(rows),
        total=len(rows),
        disable=not progress,
        desc="replay",
        unit="ev",
        mininterval=1.0,
    ):
        state = states.setdefault(row.user, UserState())
        user_seen = seen.setdefault(row.user, set())
        if index % every == 0:
            # Timed: the ranking pipeline's own work (queries, pool, blend), not the
            # store's reads nor decoding them.
            started = time.perf_counter()
            query = query_from_state(row.user, state, row.ts)
            reads = everything.candidate_reads(query)
            prepared = time.perf_counter() - started
            candidate_state = store.decoded(reads, catalog)
            started = time.perf_counter()
            pools = {
                "hybrid": hybrid.pool(query, candidate_state, catalog, user_seen),
                "everything": everything.pool(query, candidate_state, catalog, user_seen),
            }
            pooled = sorted(
                {catalog.items.names[c] for p in pools.values() for c in p.codes.tolist()}
            )
            reads = everything.item_reads(query, pooled)
            prepared += time.perf_counter() - started
            shared = {**candidate_state, **store.decoded(reads, catalog)}
            prepared *= 1e6
            for name, ranker in configs.items():
                started = time.perf_counter()
                pool = pools["hybrid" if name == "hybrid" else "everything"]
                ranked = ranker.rank(query, pool, shared, catalog, limit=K).items
                tallies[name].record(
                    ranked, row.item, prepared + (time.perf_counter() - started) * 1e6
                )
            for baseline in baselines:
                started = time.perf_counter()
                ranked = baseline.recommend(row.user, user_seen)
                tallies[baseline.name].record(
                    ranked, row.item, (time.perf_counter() - started) * 1e6
                )

        batch: list[Interaction] = interactions_of(
            event,
            state,
            settings.event_weights,
            {},
            pairs_per_order=settings.cooccurrence_pairs_per_order,
        )
        fold_event(state, event, rules, {})
        for name, model in models.items():
            learn_state = store.fetch(model.learn_reads(batch))
            started = time.perf_counter()
            writes = model.learn(batch, learn_state)
            micros = (time.perf_counter() - started) * 1e6
            store.apply(writes)
            if name in tallies:
                tallies[name].learn_us.append(micros)
        # The hybrid learns with every model: its cost is the sum.
        tallies["hybrid"].learn_us.append(sum(tallies[n].learn_us[-1] for n in SINGLE_MODELS))
        for baseline in baselines:
            started = time.perf_counter()
            baseline.learn(row)
            tallies[baseline.name].learn_us.append((time.perf_counter() - started) * 1e6)
        user_seen.add(row.item)
    return {name: tally.summary(catalog_size) for name, tally in tallies.items()}


def plot(path: Path, results: dict[str, dict[str, float]], title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, metric in zip(axes, ("hr_at_10", "ndcg_at_10"), strict=True):
        values = [results[n][metric] for n in names]
        colors = ["#c0504d" if n.startswith(("baseline", "river")) else "#2f6f9f" for n in names]
        axis.barh(names, values, color=colors)
        axis.set_title(f"{metric} — {title}")
        axis.invert_yaxis()
    figure.tight_layout()
    png = path.with_suffix(".png")
    figure.savefig(png, dpi=110)
    plt.close(figure)
    return png


def ml100k_path() -> Path:
    """MovieLens-100K as shipped inside the `recbole` wheel (GroupLens research terms)."""
    import importlib.resources

    try:
        resource = importlib.resources.files("recbole").joinpath(
            "dataset_example/ml-100k/ml-100k.inter"
        )
    except ModuleNotFoundError:
        raise SystemExit(
            "ml-100k comes with `pip install --no-deps recbole==1.2.1` (make setup does it)"
        ) from None
    return Path(str(resource))


def run(
    log: str, every: int, out: Path | None, limit: int | None, min_value: float | None
) -> dict[str, Any]:
    if log == "synthetic":
        rows = synthetic_log(limit or 60_000)
        title = "synthetic shoppers"
    else:
        path = ml100k_path() if log == "ml-100k" else Path(log)
        rows = read_log(path, min_value)
        title = path.name
    if limit:
        rows = rows[:limit]
    results = evaluate(rows, every)
    best_baseline = max(
        results["baseline_popularity"]["hr_at_10"], results["baseline_cooccurrence"]["hr_at_10"]
    )
    lift = results["hybrid"]["hr_at_10"] / best_baseline if best_baseline else float("inf")
    data = {
        "log": log,
        "events": len(rows),
        "every": every,
        "models": results,
        "hybrid_vs_best_baseline_hr": round(lift, 3),
    }
    path_out = write_results(f"evaluate-{Path(log).stem}", data, out)
    png = plot(path_out, results, title)
    header = f"{'model':<28}{'HR@10':>8}{'NDCG@10':>9}{'cover':>8}{'learn µs':>10}{'rank µs':>10}"
    print(header)
    for name, m in results.items():
        print(
            f"{name:<28}{m['hr_at_10']:>8.4f}{m['ndcg_at_10']:>9.4f}{m['coverage']:>8.3f}"
            f"{m['learn_us_p50']:>10.1f}{m['rank_us_p50']:>10.1f}"
        )
    print_table(
        [
            ("hybrid / best baseline (HR@10)", f"{lift:.3f}"),
            ("json", str(path_out)),
            ("plot", str(png)),
        ]
    )
    return data
