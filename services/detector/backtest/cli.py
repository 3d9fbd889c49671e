"""``amiwatch backtest``: historical readings through the live detection pipeline, alerts and scores out.

Examples::

    amiwatch simulate --scenario small --no-kafka --out-dir /tmp/small
    amiwatch backtest --readings /tmp/small/readings.csv --archive /tmp/small/archive.jsonl \\
        --events /tmp/small/events.csv --alerts /tmp/small/alerts.jsonl --scores /tmp/small/scores.csv
    amiwatch backtest --readings export.csv --col-meter mp_id --col-ts read_time --col-energy kwh \\
        --area-meters transformers.csv --granularity 15 --alerts alerts.csv

The readings are long-form: one row per meter and interval, stamped at the
interval's end. Column names default to the canonical frame's
(meter_id, ts, energy_kwh, area_id, register_fwd_kwh, register_rev_kwh,
voltage_a_v … current_c_a, power_factor, demand_kw, clock_offset_s); the
--col-* flags rename them. Each row becomes a raw reading of a
concentrator upload, so ingest and the detector judge it exactly as they
would judge the stream (services/detector/offline.py).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

from services.detector.backtest.output import write_alerts
from services.detector.backtest.run import INTERVALS, Backtest, backtest
from services.detector.backtest.table import FIELDS, Columns
from services.detector.offline import fold_alerts

__all__ = ["register", "main"]


def main(args: argparse.Namespace) -> int:
    """Run the backtest the flags describe; print what it did; write alerts and scores."""
    columns = Columns.of({f: getattr(args, f"col_{f}") for f in FIELDS})
    job = Backtest(args.readings, columns, args.archive, args.area_meters, args.events, args.granularity, args.thresholds)
    try:
        with ExitStack() as stack:
            scores = None
            if args.scores:
                args.scores.parent.mkdir(parents=True, exist_ok=True)
                scores = stack.enter_context(args.scores.open("w", newline="", encoding="utf-8"))
            done = backtest(job, scores)
    except (OSError, ValueError) as exc:
        print(f"backtest: {exc}", file=sys.stderr)
        return 2
    for note in done.notes:
        print(f"backtest: {note}", file=sys.stderr)
    res = done.result
    alerts = fold_alerts(res.records)
    print(
        f"backtest: {done.rows} rows → {done.messages} messages, {res.readings} readings accepted, {res.frames} frames "
        f"({done.areas} areas, {done.meters} meters, {done.interval_minutes}-min intervals) in {res.seconds:.1f} s"
    )
    if res.rejected:
        print("backtest: rejected readings by reason: " + ", ".join(f"{r} {n}" for r, n in res.rejected.items()))
    if done.events:
        print(f"backtest: {done.events} events, {done.events_dropped} after their meter's last reading (dropped)")
    by_type: dict[str, int] = {}
    for alert in alerts:
        by_type[alert["type"]] = by_type.get(alert["type"], 0) + 1
    print(f"backtest: {len(alerts)} alerts ({len(res.records)} records)" + "".join(f"\n  {t:<24} {n}" for t, n in sorted(by_type.items())))
    if args.alerts:
        written = write_alerts(args.alerts, res.records)
        print(f"backtest: wrote {written} {'alerts' if args.alerts.suffix.lower() == '.csv' else 'alert records'} to {args.alerts}")
    if args.scores:
        print(f"backtest: wrote {done.score_rows} meter-day scores to {args.scores}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``amiwatch backtest``."""
    p = subparsers.add_parser("backtest", help="run historical readings (CSV/Parquet) through the detector",
                              description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="\n".join(__doc__.splitlines()[2:]))  # fmt: skip
    p.add_argument("--readings", type=Path, required=True, metavar="FILE", help="long-form readings, .csv or .parquet")
    p.add_argument("--archive", type=Path, metavar="FILE",
                   help="area archive records (.jsonl) or a meter table (.csv); default: inferred")  # fmt: skip
    p.add_argument("--area-meters", type=Path, metavar="FILE",
                   help="CSV area_id,meter_id[,multiplier,rated_kva,loss_limit_pct]: each area's transformer meter")  # fmt: skip
    p.add_argument("--events", type=Path, metavar="FILE", help="CSV meter_id,at,code[,ts]: meter events (ts: the reading that reported it)")
    p.add_argument("--granularity", type=int, choices=INTERVALS, help="interval minutes (default: from the timestamps)")
    p.add_argument("--thresholds", type=Path, metavar="FILE", help="thresholds TOML merged over the defaults")
    p.add_argument("--alerts", type=Path, metavar="OUT", help="write alerts: .jsonl (every record) or .csv (one row per alert)")
    p.add_argument("--scores", type=Path, metavar="OUT.csv", help="write the per-meter, per-day score table")
    for name, default in FIELDS.items():
        p.add_argument(f"--col-{name.replace('_', '-')}", dest=f"col_{name}", metavar="NAME",
                       help=f"column of {name.replace('_', ' ')} (default {default})")  # fmt: skip
    p.set_defaults(func=main)
