"""An evaluation's result as one object, printed as a table or written as JSON (``--json``): the same content.

:func:`evaluate_run` is the step every source shares: labels and alert
records in, matched and measured (:mod:`~services.detector.evaluate.matching`,
:mod:`~services.detector.evaluate.metrics`). The JSON also lists every false
positive and every missed label with what else its subject carries, which
is what a detector owner needs to find the cause, and every alert (its
latest record).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from services.detector.eventtime import format_ts
from services.detector.evaluate.matching import IMPLIED, Alert, Label, Matching, Run, match
from services.detector.evaluate.metrics import (
    Attribution,
    FaultCheck,
    Row,
    attribution,
    dead_letters,
    fault_check,
    rows,
)
from services.detector.offline import fold_alerts

__all__ = ["Evaluation", "evaluate_run", "format_table"]


@dataclass(slots=True)
class Evaluation:
    """Everything ``amiwatch evaluate`` reports."""

    source: str  # "offline" or "kafka"
    scenario: dict[str, Any]
    run: Run
    rows: list[Row]
    attribution: Attribution
    faults: FaultCheck
    dead_letters: dict[str, dict[str, int]]
    false_positives: list[dict[str, Any]]
    missed: list[dict[str, Any]]
    alerts: list[dict[str, Any]] = field(default_factory=list)  # the latest record of every alert
    timings_s: dict[str, float] = field(default_factory=dict)
    alert_records: int = 0

    def misses(self) -> list[str]:
        """Every target missed, one line each."""
        out = [f"{row.name}: {miss}" for row in self.rows for miss in row.misses]
        out += [f"attribution: {miss}" for miss in self.attribution.misses]
        out += [f"faults: {miss}" for miss in self.faults.misses]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "scenario": self.scenario,
            "run": {**asdict(self.run), "meter_days": self.run.meter_days, "end": format_ts(self.run.end)},
            "rows": [row.to_json() for row in self.rows],
            "attribution": asdict(self.attribution),
            "faults": asdict(self.faults),
            "dead_letters": self.dead_letters,
            "misses": self.misses(),
            "false_positives": self.false_positives,
            "missed_labels": self.missed,
            "alert_records": self.alert_records,
            "alerts": self.alerts,
            "timings_s": {k: round(v, 2) for k, v in self.timings_s.items()},
        }


def _subject_labels(labels: list[Label]) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for label in labels:
        name = label.type if label.variant is None else f"{label.type}/{label.variant}"
        out.setdefault(label.subject, []).append(f"{label.kind}:{name}")
    return out


def _false_positives(m: Matching, labels: list[Label]) -> list[dict[str, Any]]:
    """Each false alert with the labels its subject carries (for an area alert, also its meters' anomalies)."""
    known = _subject_labels(labels)
    in_area: dict[str, list[str]] = {}
    for label in m.labels:
        if label.subject_kind == "meter":
            name = label.type if label.variant is None else f"{label.type}/{label.variant}"
            in_area.setdefault(label.area_id, []).append(f"{name}@{label.subject_id}")
    return [
        {
            "alert_id": a.alert_id,
            "type": a.type,
            "subject_id": a.subject_id,
            "area_id": a.area_id,
            "first_seen": format_ts(a.first_seen),
            "last_seen": format_ts(a.last_seen),
            "score": a.score,
            "subject_labels": sorted(set(known.get(a.subject, []))),
            "meter_anomalies_in_area": in_area.get(a.subject_id, []) if a.subject_kind == "area" else [],
            "evidence": a.evidence,
        }
        for a in m.alerts
        if m.verdict(a) == "fp"
    ]


def _missed(m: Matching) -> list[dict[str, Any]]:
    """Each undetected label with the alerts its subject did get (another type, or outside the window)."""
    on_subject: dict[tuple[str, str], list[Alert]] = {}
    for a in m.alerts:
        on_subject.setdefault(a.subject, []).append(a)
    return [
        {
            "label_id": label.label_id,
            "type": label.type,
            "variant": label.variant,
            "subject_id": label.subject_id,
            "area_id": label.area_id,
            "start": format_ts(label.start),
            "end": None if label.end is None else format_ts(label.end),
            "params": label.params,
            "subject_alerts": [f"{a.type}@{format_ts(a.first_seen)}" for a in on_subject.get(label.subject, [])],
        }
        for label in m.labels
        if m.delay_h(label) is None
    ]


def evaluate_run(
    source: str,
    scenario: dict[str, Any],
    run: Run,
    label_objs: Iterable[dict[str, Any]],
    records: list[dict[str, Any]],
    rejected: dict[str, int],
    timings_s: dict[str, float],
) -> Evaluation:
    """Match a run's alert records with its labels and measure the result."""
    labels = [Label.of(obj) for obj in label_objs]
    latest = fold_alerts(records)
    alerts = [Alert.of(obj) for obj in latest]
    m = match(labels, alerts, run)
    return Evaluation(
        source=source,
        scenario=scenario,
        run=run,
        rows=rows(m, run),
        attribution=attribution(m),
        faults=fault_check(labels, m),
        dead_letters=dead_letters(labels, rejected),
        false_positives=_false_positives(m, labels),
        missed=_missed(m),
        alerts=latest,
        timings_s=timings_s,
        alert_records=len(records),
    )


def _num(value: float | int | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


_COLUMNS = (
    ("type", 34), ("labels", 6), ("alerts", 6), ("TP", 5), ("expl", 5), ("FP", 5), ("FN", 5),
    ("prec", 6), ("recall", 6), ("F1", 6), ("med h", 6), ("p90 h", 6), ("FP/kmd", 7),
)  # fmt: skip


def _faults_line(check: FaultCheck) -> str:
    line = f"faults: {check.alerts} false theft/swing/loss alert(s) on {check.fault_subjects} subjects only data faults touch"
    if not check.alerts:
        return line
    line += f" {check.by_type}, {check.near_fault} within 48 h after one of the subject's faults"
    if check.caused is None:
        return line + "; no control run"
    return (
        f"{line}; caused by the faults: {check.caused} (the control run without data faults, areas "
        f"{', '.join(check.control_areas)}, raised {check.alerts - check.caused} of them too)"
    )


def format_table(ev: Evaluation) -> str:
    """The human-readable report: the per-type table, then attribution, faults, dead letters, misses."""
    lines = [
        f"amiwatch evaluate ({ev.source}): scenario {ev.scenario.get('scenario')} seed {ev.scenario.get('seed')}, "
        f"{ev.run.meters} meters × {ev.run.days:g} days = {ev.run.meter_days:,.0f} meter-days, "
        f"{ev.alert_records} alert records",
        "",
        "  ".join(f"{name:<{width}}" if i == 0 else f"{name:>{width}}" for i, (name, width) in enumerate(_COLUMNS)),
    ]
    for row in ev.rows:
        if not (row.labels or row.alerts) and row.type != "overall":
            continue
        name = row.name if row.variant is None else f"  /{row.variant}"
        cells = (
            name, _num(row.labels), _num(row.alerts), _num(row.tp), _num(row.explained), _num(row.fp), _num(row.fn),
            _num(row.precision), _num(row.recall), _num(row.f1), _num(row.median_delay_h, 1), _num(row.p90_delay_h, 1),
            _num(row.fp_per_1000_meter_days, 2),
        )  # fmt: skip
        flag = "  ✗" if row.misses else ""
        lines.append("  ".join(f"{c:<{w}}" if i == 0 else f"{c:>{w}}" for i, (c, (_, w)) in enumerate(zip(cells, _COLUMNS, strict=True))) + flag)
    lines.append(
        "TP/FP: alerts matching a label / neither matching nor explained; expl: explained by another anomaly "
        "(not false); FN: labels missed; med/p90 h: hours from label start to first alert; FP/kmd: false alerts "
        "per 1,000 meter-days; ✗: a target missed"
    )
    silent = [row.type for row in ev.rows if row.variant is None and not (row.labels or row.alerts) and row.type != "overall"]
    if silent:
        lines.append(f"(no labels and no alerts: {', '.join(silent)})")
    at = ev.attribution
    lines += [
        "",
        f"attribution: thief ranked first in {at.thief_first}/{at.thief_alerted} alerted thief areas "
        f"({_num(at.accuracy)}; {at.thief_labels} thief labels); taps left unattributed {at.tap_unattributed}/{at.tap_alerted}",
        _faults_line(ev.faults),
        "dead letters (expected/got): "
        + ", ".join(f"{r} {c['expected']}/{c['got']}" for r, c in ev.dead_letters.items()),
        f"implication table: {len(IMPLIED)} anomaly kinds explain other alert types (services/detector/evaluate/matching.py)",
        "timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in ev.timings_s.items()),
    ]
    misses = ev.misses()
    lines += ["", f"targets missed ({len(misses)}):" if misses else "every target met"]
    lines += [f"  {miss}" for miss in misses]
    return "\n".join(lines)
