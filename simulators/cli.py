"""``amiwatch simulate``: generate a scenario to Kafka and/or files, with labels and a summary.

Examples::

    amiwatch simulate --areas 5 --meters-per-area 40 --days 2 --seed 7 --labels L --summary S
    amiwatch simulate --scenario standard --no-kafka --out-dir /tmp/std
    amiwatch simulate --scenario small --speed 900      # 15 min of data every second
    amiwatch simulate --scenario bypass                 # one bypass thief after two weeks of history, nothing else
    amiwatch simulate --scenario small --anomalies theft_suspected/h5,clock_skew --gap-rate 0

Kafka bootstrap servers and topic names come from ``load_settings()``.
The exit code is 0 when every record was delivered, 1 when any send
failed, 2 when Kafka could not be reached at all.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from kafka.errors import KafkaError

from amiwatch.settings import load_settings
from simulators.generate import Simulation
from simulators.progress import Progress
from simulators.scenario import PRESETS, Scenario, anomaly_keys, scenario
from simulators.sinks import FileSink, KafkaSink, LabelFileSink, MultiSink
from simulators.timegrid import parse_date

__all__ = ["register", "run"]

_FAULT_FLAGS = {
    "gap_rate": "gap",
    "duplicate_rate": "duplicate",
    "late_rate": "late_upload",
    "out_of_order_rate": "out_of_order",
    "unit_wh_rate": "unit_wh",
    "reset_rate": "register_reset",
    "malformed_rate": "malformed",
    "clock_noise": "clock_noise",
}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("simulate", help="generate smart-meter readings with labelled anomalies and faults",
                              description=__doc__.splitlines()[0])
    p.add_argument("--scenario", choices=sorted(PRESETS), default="demo", help="preset to start from (default demo)")
    p.add_argument("--areas", type=int, help="transformer areas")
    p.add_argument("--meters-per-area", type=int, help="customer meters per area")
    p.add_argument("--days", type=int, help="days to simulate")
    p.add_argument("--start", type=parse_date, help="first day, YYYY-MM-DD (UTC)")
    p.add_argument("--interval", type=int, choices=(15, 30, 60), help="interval minutes (default 15)")
    p.add_argument("--seed", type=int, help="random seed: same seed, same bytes")
    p.add_argument("--speed", type=float, default=0.0, help="0: as fast as possible; F: F × real time")
    p.add_argument("--per-reading", action="store_true", help="one message per reading instead of concentrator uploads")
    p.add_argument("--anomaly-rate", type=float, help="share of meters with an anomaly (default 0.05)")
    p.add_argument("--warmup-days", type=int, help="days before anomalies start (default: 29 for runs over 35 days)")
    p.add_argument("--anomalies", type=_anomaly_keys, metavar="KINDS",
                   help="plan only these kinds, comma-separated type[/variant] (e.g. area_high_loss/thief for a "
                        "bypass thief, theft_suspected/h5,clock_skew); 'all': every kind (default: the preset's)")
    for flag in _FAULT_FLAGS:
        p.add_argument(f"--{flag.replace('_', '-')}", type=float, help="fault rate (see simulators.scenario.FaultRates)")
    p.add_argument("--labels", type=Path, help="also write labels to this JSON-lines file")
    p.add_argument("--summary", type=Path, help="write the run's counts to this JSON file")
    p.add_argument("--out-dir", type=Path, help="write archive.jsonl, raw.jsonl, labels.jsonl, readings.csv, events.csv here")
    p.add_argument("--no-kafka", action="store_true", help="do not publish to Kafka")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.set_defaults(func=run)


_ALL = "all"


def _anomaly_keys(text: str) -> Any:
    """argparse type of ``--anomalies``: a set of kinds, or ``"all"`` (every kind)."""
    try:
        keys = anomaly_keys(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return _ALL if keys is None else keys


def _scenario(args: argparse.Namespace) -> Scenario:
    rates = {field: getattr(args, flag) for flag, field in _FAULT_FLAGS.items() if getattr(args, flag) is not None}
    faults = replace(PRESETS[args.scenario].faults, **rates)
    chosen = scenario(
        args.scenario,
        areas=args.areas,
        meters_per_area=args.meters_per_area,
        days=args.days,
        start=args.start,
        interval_minutes=args.interval,
        seed=args.seed,
        anomaly_rate=args.anomaly_rate,
        warmup_days=args.warmup_days,
        faults=faults,
    )
    if args.anomalies is not None:
        chosen = replace(chosen, anomalies=None if args.anomalies == _ALL else args.anomalies)
    return chosen


def run(args: argparse.Namespace) -> int:
    sim = Simulation(_scenario(args), per_reading=args.per_reading)
    sinks: list[Any] = []
    if args.out_dir:
        sinks.append(FileSink(args.out_dir))
    if args.labels:
        sinks.append(LabelFileSink(args.labels))
    if not args.no_kafka:
        try:
            sinks.append(KafkaSink(load_settings()))
        except KafkaError as exc:  # NoBrokersAvailable and friends: nothing was sent
            for s in sinks:
                s.close()
            print(f"simulate: cannot reach Kafka: {exc!r}", file=sys.stderr)
            return 2
    sink = MultiSink(sinks)
    show = sys.stderr.isatty() if args.progress is None else args.progress
    progress = Progress(sim.scenario.meters) if show else None
    failures = 0
    try:
        summary = sim.run(sink, speed=args.speed, progress=progress)
    finally:
        if progress is not None:
            progress.close()
        failures = sink.close()
    result = summary.to_dict() | {"delivery_failures": failures}
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    t = result["timing"]
    print(
        f"simulate: {result['messages']['total']} messages, {result['readings']} readings, "
        f"{result['labels']['total']} labels in {t['elapsed_s']} s ({t['readings_per_s']} readings/s)",
        file=sys.stderr,
    )
    return 1 if failures else 0
