"""The `currents` command: up, worker, api, topics, generate, keygen, bench, evaluate."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from currents.errors import ConfigurationError, CurrentsError
from currents.settings import load_settings


def _up(args: argparse.Namespace) -> int:
    from currents.supervisor import run_up

    return run_up(load_settings(), demo=args.demo, demo_rate=args.rate)


def _worker(_args: argparse.Namespace) -> int:
    from streams.runner import run_worker

    run_worker(load_settings())
    return 0


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    from currents.logs import configure_logging
    from serving.main import create_app

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)
    uvicorn.run(
        create_app(settings),
        host=args.host or settings.api_host,
        port=args.port if args.port is not None else settings.api_port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=5,
    )
    return 0


def _topics(args: argparse.Namespace) -> int:
    from currents.topics import ensure_topics, topic_plan

    settings = load_settings()
    if not settings.kafka_bootstrap:
        raise ConfigurationError("CURRENTS_KAFKA_BOOTSTRAP must be set")
    ensure_topics(settings.kafka_bootstrap, settings, args.timeout)
    for name, partitions in topic_plan(settings).items():
        print(f"{name}: {partitions} partition(s)")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from benchmarks.traffic import TrafficOptions, run_traffic
    from currents.kafka_security import client_options

    settings = load_settings()
    options = TrafficOptions(
        rate=args.rate,
        duration_s=args.duration,
        users=args.users,
        items=args.items,
        seed=args.seed,
        target=args.target,
        bootstrap=settings.kafka_bootstrap,
        topic=settings.events_topic,
        api_url=args.api_url,
        api_key=args.api_key,
        progress=not args.no_progress,
        shape=args.shape,
        kafka_options=client_options(settings),
    )
    try:
        sent = asyncio.run(run_traffic(options))
    except KeyboardInterrupt:
        return 0
    print(f"sent {sent} events", file=sys.stderr)
    return 0


def _bench(args: argparse.Namespace) -> int:
    out = Path(args.json) if args.json else None
    if args.name == "memory":
        from benchmarks import memory

        memory.run(args.users, args.items, args.sessions, args.seed, out)
    elif args.name == "profile-cost":
        from benchmarks import profile_cost

        profile_cost.run(args.events or 100_000, args.users, out)
    elif args.name == "rank":
        from benchmarks import rank_cost

        rank_cost.run(args.events or 100_000, out)
    else:
        from benchmarks.suite import run_bench

        run_bench(args, out)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from benchmarks import evaluate

    evaluate.run(
        args.log, args.every, Path(args.json) if args.json else None, args.limit, args.min_value
    )
    return 0


def _keygen(args: argparse.Namespace) -> int:
    from serving.security import SCOPES, format_entry, new_secret

    scopes = set(args.scopes.split(","))
    if not scopes <= SCOPES:
        print(f"scopes must be among {sorted(SCOPES)}", file=sys.stderr)
        return 2
    secret = new_secret()
    print(f"key (give to the client):          {secret}")
    print(f"entry (append to CURRENTS_API_KEYS): {format_entry(args.name, secret, scopes)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="currents", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start servers (embedded if unset), worker and API")
    up.add_argument("--demo", action="store_true", help="also run synthetic shoppers")
    up.add_argument("--rate", type=float, default=100.0, help="demo events per second")
    up.set_defaults(run=_up)

    sub.add_parser("worker", help="run the stream worker").set_defaults(run=_worker)

    api = sub.add_parser("api", help="run the HTTP API")
    api.add_argument("--host")
    api.add_argument("--port", type=int)
    api.set_defaults(run=_api)

    topics = sub.add_parser("topics", help="create the topics that are missing, then exit")
    topics.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for the broker to answer"
    )
    topics.set_defaults(run=_topics)

    gen = sub.add_parser("generate", help="send synthetic shoppers' events")
    gen.add_argument("--rate", type=float, default=200.0, help="events per second")
    gen.add_argument("--duration", type=float, default=30.0, help="seconds; 0 runs until Ctrl-C")
    gen.add_argument("--users", type=int, default=1000)
    gen.add_argument("--items", type=int, default=500)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--target", choices=("kafka", "http"), default="kafka")
    gen.add_argument("--api-url")
    gen.add_argument("--api-key")
    gen.add_argument("--no-progress", action="store_true")
    gen.add_argument(
        "--shape",
        choices=("shoppers", "heavy-baskets"),
        default="shoppers",
        help="synthetic shoppers' sessions, or grocery orders of 1-80 lines from weekly "
        "regulars (--users customers, --items catalog size)",
    )
    gen.set_defaults(run=_generate)

    bench = sub.add_parser("bench", help="run a benchmark; writes JSON and a PNG plot")
    bench.add_argument(
        "name",
        choices=("memory", "profile-cost", "rank", "pipeline", "freshness", "serving", "scale"),
    )
    bench.add_argument("--json", help="output path (default benchmarks/results/<name>.json)")
    bench.add_argument("--users", type=int, default=10_000)
    bench.add_argument("--items", type=int, default=2_000)
    bench.add_argument("--sessions", type=int, default=3, help="sessions per user (memory)")
    bench.add_argument(
        "--events", type=int, help="events (profile-cost 100,000; pipeline 200,000; scale 50,000)"
    )
    bench.add_argument("--seed", type=int, default=7)
    from benchmarks.suite import add_bench_options

    add_bench_options(bench)
    bench.set_defaults(run=_bench)

    evaluate = sub.add_parser(
        "evaluate", help="prequential evaluation of every model, the hybrid and baselines"
    )
    evaluate.add_argument(
        "--log",
        required=True,
        help="CSV/TSV log with user, item, timestamp (+ type, value); or 'ml-100k', 'synthetic'",
    )
    evaluate.add_argument("--every", type=int, default=1, help="evaluate every K-th event")
    evaluate.add_argument("--json", help="output path (default benchmarks/results/...)")
    evaluate.add_argument("--limit", type=int, help="only the first N events")
    evaluate.add_argument("--min-value", type=float, help="skip rows whose value is lower")
    evaluate.set_defaults(run=_evaluate)

    keygen = sub.add_parser("keygen", help="make an API key and its hashed config entry")
    keygen.add_argument("name")
    keygen.add_argument("--scopes", default="read")
    keygen.set_defaults(run=_keygen)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except CurrentsError as error:
        print(f"currents {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
