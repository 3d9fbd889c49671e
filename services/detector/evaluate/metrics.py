"""The numbers of an evaluation: per anomaly type (and variant), overall, attribution, and the fault check.

Definitions (per row; a row is a catalogue type, or one variant of it):

- ``labels``: anomaly labels; ``detected``: labels with a matching alert;
  ``fn`` = labels − detected.
- ``alerts``: distinct alerts of the type; ``tp``: those matching a label;
  ``explained``: unmatched but explained by another anomaly
  (:data:`~services.detector.evaluate.matching.IMPLIED`); ``fp``: the rest.
  A variant row counts the alerts matched to its labels; false positives
  belong to no variant, so variant rows leave ``fp`` and precision empty.
- precision = tp / (tp + fp); recall = detected / labels; F1 their harmonic
  mean. A ratio with a zero denominator is None (shown as ``—``).
- delays: median and 90th percentile of the detection delays (hours).
- ``fp_per_1000_meter_days`` = fp × 1000 / (archived customer meters × days),
  for every type alike (area types too), so rows add up to the overall rate.

Targets (:data:`TARGETS`) are what the product promises; ``misses`` names
each one a row fails, so a report shows at a glance what to fix.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

import schemas
from services.detector.evaluate.matching import Alert, Label, Matching, Run
from services.detector.eventtime import format_ts

__all__ = [
    "CATALOGUE",
    "EVENT_LIKE",
    "TARGETS",
    "LOSS_TYPES",
    "THEFT_SWING_LOSS",
    "Row",
    "Attribution",
    "FaultCheck",
    "rows",
    "attribution",
    "candidates",
    "fault_check",
    "dead_letters",
]

CATALOGUE: tuple[str, ...] = tuple(schemas.load("common")["$defs"]["anomaly_type"]["enum"])
"""Every anomaly type of the contract, in the contract's order: every one gets a row."""

EVENT_LIKE: frozenset[str] = frozenset(
    {
        "register_decrease", "meter_stopped", "meter_flying", "clock_skew", "voltage_loss", "current_loss",
        "current_imbalance", "reverse_energy", "tamper_event", "over_capacity", "low_power_factor",
        "zero_consumption", "usage_on_inactive", "multiplier_mismatch", "missing_data", "duplicate_data",
    }
)  # fmt: skip
"""Types decided by a rule on a reading, an event or a day's sum; the others are statistical."""

TARGETS: dict[str, float] = {
    "event_like": 0.98,  # precision and recall of an event-like type
    "statistical": 0.90,  # precision and recall of a statistical type, each theft variant, area types
    "theft_median_delay_h": 48.0,
    "area_loss_median_delay_h": 24.0,
    "attribution_first": 0.90,
    "fp_per_1000_meter_days": 1.0,  # overall
}

LOSS_TYPES: frozenset[str] = frozenset({"area_high_loss", "area_negative_loss"})
THEFT_SWING_LOSS: frozenset[str] = frozenset(
    {"theft_suspected", "consumption_swing", "sustained_drop", "area_high_loss", "area_negative_loss", "area_loss_uncomputable"}
)
"""The alert types a data fault must never cause (the fault check)."""


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def _f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None or p + r == 0:
        return None
    return 2 * p * r / (p + r)


@dataclass(slots=True)
class Row:
    """One line of the per-type table (see the module docstring for each field)."""

    type: str
    variant: str | None = None
    labels: int = 0
    alerts: int = 0
    tp: int = 0
    explained: int = 0
    fp: int | None = 0
    detected: int = 0
    fn: int = 0
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    median_delay_h: float | None = None
    p90_delay_h: float | None = None
    fp_per_1000_meter_days: float | None = None
    misses: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.type if self.variant is None else f"{self.type}/{self.variant}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "name": self.name}


def _fill(row: Row, labels: list[Label], alerts: list[Alert], m: Matching, run: Run, with_fp: bool) -> Row:
    verdicts = Counter(m.verdict(a) for a in alerts)
    delays = [d for d in (m.delay_h(label) for label in labels) if d is not None]
    row.labels, row.alerts = len(labels), len(alerts)
    row.tp, row.explained = verdicts["tp"], verdicts["explained"]
    row.detected = len(delays)
    row.fn = row.labels - row.detected
    row.recall = _ratio(row.detected, row.labels)
    if with_fp:
        row.fp = verdicts["fp"]
        row.precision = _ratio(row.tp, row.tp + row.fp)
        row.f1 = _f1(row.precision, row.recall)
        row.fp_per_1000_meter_days = _ratio(row.fp * 1000.0, run.meter_days)
    else:
        row.fp = None
    if delays:
        row.median_delay_h = float(np.median(delays))
        row.p90_delay_h = float(np.percentile(delays, 90))
    return row


def _judge(row: Row) -> None:
    """Name each target the row misses (types with neither labels nor alerts have nothing to judge)."""
    if row.type == "overall":
        rate = row.fp_per_1000_meter_days
        if rate is not None and rate > TARGETS["fp_per_1000_meter_days"]:
            row.misses.append(f"false alerts {rate:.2f} per 1000 meter-days > {TARGETS['fp_per_1000_meter_days']:g}")
        return
    target = TARGETS["event_like" if row.type in EVENT_LIKE else "statistical"]
    for name, value in (("precision", row.precision), ("recall", row.recall)):
        if value is not None and value < target:
            row.misses.append(f"{name} {value:.3f} < {target:g}")
    limit = {"theft_suspected": TARGETS["theft_median_delay_h"]}.get(row.type)
    if row.type in LOSS_TYPES:
        limit = TARGETS["area_loss_median_delay_h"]
    if limit is not None and row.median_delay_h is not None and row.median_delay_h > limit:
        row.misses.append(f"median delay {row.median_delay_h:.1f} h > {limit:g} h")


def rows(m: Matching, run: Run) -> list[Row]:
    """Every catalogue type (then its variants, if its labels have any), then the overall row."""
    labels_of: dict[str, list[Label]] = defaultdict(list)
    alerts_of: dict[str, list[Alert]] = defaultdict(list)
    for label in m.labels:
        labels_of[label.type].append(label)
    for alert in m.alerts:
        alerts_of[alert.type].append(alert)
    out: list[Row] = []
    for type_ in (*CATALOGUE, *sorted(set(alerts_of) - set(CATALOGUE))):
        row = _fill(Row(type_), labels_of[type_], alerts_of[type_], m, run, with_fp=True)
        _judge(row)
        out.append(row)
        variants = sorted({label.variant for label in labels_of[type_] if label.variant is not None})
        for variant in variants:
            mine = [label for label in labels_of[type_] if label.variant == variant]
            matched = [a for a in alerts_of[type_] if m.variant_of(a) == variant]
            sub = _fill(Row(type_, variant), mine, matched, m, run, with_fp=False)
            _judge(sub)
            out.append(sub)
    overall = _fill(Row("overall"), m.labels, m.alerts, m, run, with_fp=True)
    _judge(overall)
    out.append(overall)
    return out


@dataclass(slots=True)
class Attribution:
    """Area-loss attribution: does the named culprit come first in the alert's evidence?

    ``thief_*``: ``area_high_loss`` labels of variant ``thief`` (the label's
    ``params.thief_meter_id``), judged on the earliest matching alert's
    latest evidence. ``tap_*``: variant ``tap`` labels whose alert (rightly)
    names no metered customer.
    """

    thief_labels: int = 0
    thief_alerted: int = 0
    thief_first: int = 0
    accuracy: float | None = None
    tap_labels: int = 0
    tap_alerted: int = 0
    tap_unattributed: int = 0
    cases: list[dict[str, Any]] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)


def candidates(evidence: dict[str, Any]) -> list[str]:
    """Meter ids an area alert's evidence names as explaining its loss, best first.

    The attribution sits under ``evidence.attribution`` (or at the top
    level) as ``candidates``: a list of ``{meter_id, …}`` objects or ids.
    """
    source = evidence.get("attribution", evidence)
    found = source.get("candidates") if isinstance(source, dict) else None
    return [c["meter_id"] if isinstance(c, dict) else str(c) for c in found or ()]


def attribution(m: Matching) -> Attribution:
    """Score the attribution of every area_high_loss label caused by a thief or a tap."""
    out = Attribution()
    for label in m.labels:
        if label.type != "area_high_loss" or label.variant not in ("thief", "tap"):
            continue
        found = sorted(m.found_by.get(label.label_id, ()), key=lambda a: a.first_seen)
        named = candidates(found[0].evidence) if found else []
        if label.variant == "thief":
            thief = label.params.get("thief_meter_id")
            out.thief_labels += 1
            out.thief_alerted += bool(found)
            first = bool(named) and named[0] == thief
            out.thief_first += first
            out.cases.append({"label_id": label.label_id, "area_id": label.subject_id, "thief": thief,
                              "alerted": bool(found), "candidates": named[:5], "first": first})  # fmt: skip
        else:
            out.tap_labels += 1
            out.tap_alerted += bool(found)
            out.tap_unattributed += bool(found) and not named
    out.accuracy = _ratio(out.thief_first, out.thief_alerted)
    if out.accuracy is not None and out.accuracy < TARGETS["attribution_first"]:
        out.misses.append(f"thief ranked first in {out.accuracy:.0%} < {TARGETS['attribution_first']:.0%}")
    return out


@dataclass(slots=True)
class FaultCheck:
    """Theft, swing and loss alerts on subjects that only data faults touched, and how many the faults caused.

    The target is that no data fault alone ever produces such an alert. Faults
    touch most subjects of a run somewhere, so an alert on one says little by
    itself: ``caused`` counts the ones a control run of the same scenario
    without its data faults does not raise (:mod:`~services.detector.evaluate.control`).
    """

    fault_subjects: int = 0
    alerts: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    near_fault: int = 0  # of those, first seen within FAULT_REACH_H after one of the subject's faults
    caused: int | None = None  # of those, the ones the control run did not raise (None: no control run)
    control_areas: list[str] = field(default_factory=list)
    suspects: list[dict[str, Any]] = field(default_factory=list)  # each such alert, its faults near it, whether the control raised it

    @property
    def misses(self) -> list[str]:
        """The target missed, if it is: an alert the faults caused, or suspects no control run has judged."""
        if self.caused is None and self.alerts:
            return [f"{self.alerts} false theft/swing/loss alert(s) on subjects only data faults touch, no control run"]
        if self.caused:
            return [f"{self.caused} theft/swing/loss alert(s) caused by data faults (absent from the control run without them)"]
        return []


FAULT_REACH_H = 48.0
"""How long after a fault an alert on its subject is counted as ``near`` it (the rules' longest look-back of note)."""


def fault_check(labels: list[Label], m: Matching) -> FaultCheck:
    """False theft/swing/loss alerts whose subject carries fault labels and no anomaly label.

    A meter's faults are its own (gap, register reset); an area's are its own
    (upload faults) and its meters'. The subject must have no anomaly label
    of its own; an area alert that an anomaly of one of its meters explains
    is not false (it is ``explained``), so it is not counted either.
    ``near_fault`` counts those first seen within :data:`FAULT_REACH_H` after
    one of the subject's faults; whether the faults caused them is the
    control run's question.
    """
    faults: dict[tuple[str, str], list[Label]] = defaultdict(list)
    for label in labels:
        if label.kind == "fault":
            faults[label.subject].append(label)
            faults[("area", label.area_id)].append(label)
    for label in m.labels:
        faults.pop(label.subject, None)
    out = FaultCheck(fault_subjects=len(faults))
    by_type: Counter[str] = Counter()
    reach = int(FAULT_REACH_H * 3600)
    for alert in m.alerts:
        if alert.type in THEFT_SWING_LOSS and alert.subject in faults and m.verdict(alert) == "fp":
            by_type[alert.type] += 1
            near = [f for f in faults[alert.subject] if f.start <= alert.first_seen <= (f.end or f.start) + reach]
            out.near_fault += bool(near)
            out.suspects.append({
                "alert_id": alert.alert_id, "type": alert.type, "subject_kind": alert.subject_kind,
                "subject_id": alert.subject_id, "area_id": alert.area_id, "first_seen": format_ts(alert.first_seen),
                "last_seen": format_ts(alert.last_seen), "faults_near": sorted({f"{f.type}@{f.label_id}" for f in near}),
            })  # fmt: skip
    out.alerts = sum(by_type.values())
    out.by_type = dict(sorted(by_type.items()))
    return out


def dead_letters(labels: list[Label], rejected: dict[str, int]) -> dict[str, dict[str, int]]:
    """Per dead-letter reason: malformed messages labelled (``expected``) against ingest's rejections (``got``)."""
    expected = Counter(label.type for label in labels if label.kind == "malformed")
    return {
        reason: {"expected": expected.get(reason, 0), "got": rejected.get(reason, 0)}
        for reason in sorted(set(expected) | set(rejected))
    }
