"""``amiwatch evaluate``: how well the detector finds the simulator's labelled anomalies.

Examples::

    amiwatch evaluate                                   # the small scenario, offline
    amiwatch evaluate --scenario standard --json /tmp/eval.json
    amiwatch evaluate --scenario demo --via-kafka       # through the broker and the real services
    amiwatch evaluate --thresholds deploy/thresholds.toml

Prints one row per anomaly type (theft and area types also per variant),
attribution accuracy, the data-fault check and the dead letters, then every
target missed; ``--json`` writes the same, plus each false positive and
each missed label. The matching rule is in
``services/detector/evaluate/matching.py`` (and the README).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from services.detector.evaluate.report import format_table
from services.detector.evaluate.run import evaluate
from simulators.progress import Progress
from simulators.scenario import PRESETS, scenario

__all__ = ["register", "main"]


def main(args: argparse.Namespace) -> int:
    """Run the evaluation the flags describe; print the table, write the JSON."""
    chosen = scenario(
        args.scenario,
        seed=args.seed,
        areas=args.areas,
        meters_per_area=args.meters_per_area,
        days=args.days,
        warmup_days=args.warmup_days,
    )
    print(
        f"evaluate: scenario {chosen.name} ({chosen.areas} areas × {chosen.meters_per_area} meters × {chosen.days} days, "
        f"seed {chosen.seed}) {'via Kafka' if args.via_kafka else 'offline'}…",
        file=sys.stderr,
        flush=True,
    )
    show = sys.stderr.isatty() if args.progress is None else args.progress
    progress = Progress(chosen.meters) if show else None
    try:
        result = evaluate(
            chosen, thresholds=args.thresholds, via_kafka=args.via_kafka, workers=args.workers, progress=progress
        )
    finally:
        if progress is not None:
            progress.close()
    print(format_table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2) + b"\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``amiwatch evaluate``."""
    p = subparsers.add_parser("evaluate", help="score the detector against a labelled simulated scenario",
                              description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="\n".join(__doc__.splitlines()[2:]))  # fmt: skip
    p.add_argument("--scenario", choices=sorted(PRESETS), default="small", help="simulator preset (default small)")
    p.add_argument("--seed", type=int, help="simulator seed (default: the preset's)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the result as JSON here")
    p.add_argument("--via-kafka", action="store_true",
                   help="publish to the broker and run `amiwatch ingest` and `amiwatch detect` as subprocesses")  # fmt: skip
    p.add_argument("--thresholds", type=Path, metavar="FILE",
                   help="thresholds TOML merged over the defaults (as AMIWATCH_THRESHOLDS)")  # fmt: skip
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="offline: split the areas among N processes, as Kafka partitions do (default 1)")  # fmt: skip
    p.add_argument("--areas", type=int, help="override the preset's number of areas")
    p.add_argument("--meters-per-area", type=int, help="override the preset's meters per area")
    p.add_argument("--days", type=int, help="override the preset's number of days")
    p.add_argument("--warmup-days", type=int, help="override the days before anomalies start")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr while the scenario runs (default: when stderr is a terminal)")  # fmt: skip
    p.set_defaults(func=main)
