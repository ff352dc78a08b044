"""Options and dispatch of the end-to-end `currents bench` runs (pipeline, freshness,
serving, scale). Kept free of heavy imports: the CLI builds its parser from here."""

from __future__ import annotations

import argparse
from pathlib import Path

SHAPES = ("shoppers", "heavy-baskets")


def add_bench_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--partitions", type=int, default=4, help="topic partitions")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds any one phase may take at most"
    )
    parser.add_argument("--rate", type=float, default=2000.0, help="events per second (freshness)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds (freshness)")
    parser.add_argument(
        "--rates",
        default="250,500,1000,2000",
        help="requests per second, comma-separated (serving)",
    )
    parser.add_argument(
        "--step", type=float, default=8.0, help="seconds per rate and per max run (serving)"
    )
    parser.add_argument(
        "--ingest-rate", type=float, default=1000.0, help="events/s ingested meanwhile (serving)"
    )
    parser.add_argument(
        "--shape",
        choices=SHAPES,
        default="shoppers",
        help="traffic: synthetic shoppers, or grocery baskets of 1-80 lines (pipeline, "
        "freshness); for heavy-baskets --events counts orders and --users customers",
    )
    parser.add_argument(
        "--no-cluster", action="store_true", help="skip the Redis Cluster run (scale)"
    )


def run_bench(args: argparse.Namespace, out: Path | None) -> None:
    if args.name == "pipeline" and args.shape == "heavy-baskets":
        from benchmarks.pipeline_heavy import run as run_heavy

        run_heavy(args.events or 20_000, args.users, args.items, args.partitions, args.timeout, out)
    elif args.name == "pipeline":
        from benchmarks.pipeline import run as run_pipeline

        run_pipeline(
            args.events or 200_000, args.users, args.items, args.partitions, args.timeout, out
        )
    elif args.name == "freshness":
        from benchmarks.freshness import run as run_freshness

        run_freshness(
            args.rate, args.duration, args.users, args.items, args.partitions, out, args.shape
        )
    elif args.name == "serving":
        from benchmarks.serving_load import run as run_serving

        rates = [float(r) for r in args.rates.split(",") if r.strip()]
        run_serving(rates, args.step, args.ingest_rate, args.users, args.items, out)
    elif args.name == "scale":
        from benchmarks.scale import run as run_scale

        run_scale(
            args.events or 50_000,
            args.users,
            args.items,
            max(args.partitions, 8),
            args.timeout,
            not args.no_cluster,
            out,
        )
