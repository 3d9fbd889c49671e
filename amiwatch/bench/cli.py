"""``amiwatch bench``: load a simulated fleet, measure every figure of issue 5, print a table, write JSON.

Examples::

    amiwatch bench                                         # 40 areas × 250 meters × 7 days, once
    amiwatch bench --areas 100 --meters-per-area 200 --days 3 --repeat 3 --json bench.json
    amiwatch bench --per-reading --days 2                  # one message per reading instead of uploads

Uses the local broker (started if it is not running, stopped again if the
bench started it) unless ``KAFKA_BOOTSTRAP_SERVERS`` names a cluster. Each
repetition works under fresh topic prefixes (``bench<time>r<n><phase>.``)
and deletes its topics afterwards (``--keep-topics`` keeps them); service
logs stay under ``<state dir>/bench/<run id>/``. What each figure means:
:mod:`amiwatch.bench`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from amiwatch.bench.fleet import FleetSpec
from amiwatch.bench.procs import BenchError
from amiwatch.bench.progress import note
from amiwatch.bench.report import machine, summarise, table
from amiwatch.bench.repetition import BenchConfig, run_repetition
from amiwatch.kafka.local_broker import broker_running, start_local_broker, stop_local_broker
from amiwatch.settings import load_settings

__all__ = ["register", "bench"]


def bench(args: argparse.Namespace) -> int:
    settings = load_settings()
    owns_broker = not settings.external_kafka and not broker_running(settings)
    bootstrap = start_local_broker(settings)
    run_id = args.run_id or time.strftime("bench%Y%m%d%H%M%S")
    spec = FleetSpec(args.areas, args.meters_per_area, args.days, args.interval, args.per_reading, args.seed)
    config = BenchConfig(
        spec=spec, bootstrap=bootstrap, partitions=args.partitions or settings.partitions, run_id=run_id,
        run_dir=settings.state_dir / "bench" / run_id, latency_seconds=args.latency_seconds,
        latency_load=args.latency_load, timeout_s=args.timeout,
        progress=args.progress, keep_topics=args.keep_topics,
    )
    before = machine()
    note(f"bench {run_id}: {spec.areas} areas × {spec.meters_per_area} meters × {spec.days} days, "
         f"{'one message per reading' if spec.per_reading else 'concentrator uploads'}, "
         f"{config.partitions} partitions, broker {bootstrap}, {args.repeat} repetition(s); "
         f"load average {before['load_average'][0]:.2f}")
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        for rep in range(args.repeat):
            results.append(run_repetition(config, rep))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        if owns_broker:
            stop_local_broker(settings)
    figures = summarise(results, spec.per_reading)
    after = machine()
    print(table(figures, len(results)))
    print(f"\n{len(results)} repetition(s) in {time.monotonic() - started:.0f} s on {after['cpus']} CPUs "
          f"({after['cpu_model'] or 'unknown CPU'}); load average before {before['load_average'][0]:.2f}, "
          f"after {after['load_average'][0]:.2f}")
    if args.json:
        document = {
            "command": ["amiwatch", *sys.argv[1:]] if sys.argv[0].endswith(("amiwatch", "cli.py")) else sys.argv,
            "run_id": run_id,
            "fleet": {"areas": spec.areas, "meters_per_area": spec.meters_per_area, "meters": spec.meters,
                      "days": spec.days, "interval_minutes": spec.interval_minutes, "per_reading": spec.per_reading,
                      "seed": spec.seed},
            "partitions": config.partitions,
            "bootstrap": bootstrap,
            "repeat": len(results),
            "seconds": time.monotonic() - started,
            "machine": {**after, "load_average_before": before["load_average"]},
            "figures": figures,
            "repetitions": results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n")
        note(f"figures written to {args.json}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``amiwatch bench``."""
    p = subparsers.add_parser("bench", help="measure throughput, latency and memory on the real broker",
                              description=__doc__.splitlines()[0])
    p.add_argument("--areas", type=int, default=40, help="transformer areas (default 40)")
    p.add_argument("--meters-per-area", type=int, default=250, help="customer meters per area (default 250)")
    p.add_argument("--days", type=int, default=7, help="days of readings to load (default 7)")
    p.add_argument("--interval", type=int, choices=(15, 30, 60), default=15, help="interval minutes (default 15)")
    p.add_argument("--per-reading", action="store_true", help="one message per reading instead of concentrator uploads")
    p.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")
    p.add_argument("--repeat", type=int, default=1, metavar="N", help="repetitions; figures are their median (default 1)")
    p.add_argument("--partitions", type=int, help="partitions per topic (default AMIWATCH_PARTITIONS, 8)")
    p.add_argument("--latency-seconds", type=float, default=60.0,
                   help="how long the latency phase streams readings at most (default 60)")
    p.add_argument("--latency-load", type=float, default=0.5,
                   help="share of the pipeline's sustained rate offered in the latency phase (default 0.5)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds any one phase may take (default 1800)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write every figure and repetition here")
    p.add_argument("--run-id", help="prefix of this run's topics and state directory (default bench<timestamp>)")
    p.add_argument("--keep-topics", action="store_true", help="do not delete the run's topics afterwards")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="progress on stderr (default: a live line on a terminal, else a line every 5 s)")
    p.set_defaults(func=bench)
