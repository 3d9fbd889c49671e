"""Which alert is true, which label was found: the matching rule of ``amiwatch evaluate``.

The rule (the README repeats it):

1. Only labels of kind ``anomaly`` are matched; ``fault`` and ``malformed``
   labels are things that must *not* raise an alert.
2. An alert **matches** a label when they have the same ``type``, the same
   ``subject_kind`` and ``subject_id``, and the alert's ``first_seen`` lies in
   the label's window ``[start − 1 interval, (end or the run's end) + tolerance(type)]``.
   The interval before ``start`` admits findings stamped by the meter's own
   event time (a tamper event happens inside the first affected interval,
   whose reading is stamped at its end). The tolerance (:data:`TOLERANCE_H`)
   is the time a rule needs after the data shows the anomaly: rules judged
   when a day closes (the day's findings are stamped at its end) get 24 h, rules
   judged per interval get 1 h; never less than one interval. ``missing_data``
   is both: per interval for a meter (no reading for 4 intervals), per day for
   an area (its collection rate).
3. A label is **detected** when at least one alert matches it; its detection
   delay is the earliest matching ``first_seen`` − ``start`` (hours).
4. An alert is a **true positive** when it matches a label. An alert that
   matches none but is *explained* by another anomaly label, per the
   implication table :data:`IMPLIED` (an anomaly whose physics makes
   another type's catalogue rule fire: a bypass thief's consumption drops,
   so ``sustained_drop`` and ``consumption_swing`` fire on it), within that
   label's window with the explained type's tolerance, is reported as
   **explained**: neither true nor false, counted apart. Every other alert
   is a **false positive**. Faults explain nothing. A household's
   anomaly does not explain an area-loss alert: it is a fraction of a
   percent of its area's supply, and the simulator labels the area
   injections sized to move an area's loss (tap, thief, wrong multiplier,
   wrong area) on their own. A *large* meter's under-registration does
   (a current or voltage loss, a theft, a stopped meter on a customer
   using at least :data:`LARGE_METER_SHARE` of its area's energy: losing
   one phase of a 20 % customer raises the area's loss by 7 points; seen
   on the standard run, where a commercial meter's current loss took its
   area from 5.6 % to 13 %).
5. Alerts are counted once per ``alert_id`` (an alert that resolves and
   opens again is a second alert; both can be true).

Variants: an alert has no variant; a matched alert takes the variant of the
label it matched (the first, by label order), so per-variant rows count
labels, matched alerts, misses and delays, while false positives (which
belong to no label) are counted per type only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from services.detector.eventtime import parse_ts

__all__ = [
    "Label",
    "Alert",
    "Run",
    "Implied",
    "IMPLIED",
    "LARGE_METER_SHARE",
    "DAILY_TYPES",
    "DAILY_AREA_TYPES",
    "TOLERANCE_H",
    "Matching",
    "match",
    "tolerance_s",
]

DAILY_TYPES: frozenset[str] = frozenset(
    {
        "consumption_swing",
        "sustained_drop",
        "theft_suspected",
        "zero_consumption",
        "interval_spike",
        "low_power_factor",
        "multiplier_mismatch",  # its day-sum check runs when the day closes
        "wrong_area",
        "area_high_loss",
        "area_negative_loss",
        "area_loss_uncomputable",
    }
)
"""Types whose rules (or one of them) judge a closed day: findings are stamped at the day's end."""

DAILY_AREA_TYPES: frozenset[str] = frozenset({"missing_data"})
"""Types judged per interval for a meter but per closed day for an area."""

TOLERANCE_H: dict[str, float] = defaultdict(lambda: 1.0, {t: 24.0 for t in DAILY_TYPES})
"""Hours after a label's end in which an alert of the label's type still counts as finding it."""


def tolerance_s(type_: str, subject_kind: str, interval_s: int) -> int:
    """The tolerance of ``type_`` about a ``subject_kind`` in seconds, at least one interval."""
    hours = 24.0 if subject_kind == "area" and type_ in DAILY_AREA_TYPES else TOLERANCE_H[type_]
    return max(int(hours * 3600), interval_s)


@dataclass(frozen=True, slots=True)
class Implied:
    """An alert type an anomaly legitimately raises, and on which subject.

    ``on``: ``"subject"`` the label's own subject; ``"area"`` the label's area
    (an area alert); ``"fed_by_area"`` the area named by the label's
    ``params.fed_by_area`` (wrong area: the area that really feeds the meter);
    ``"area_meters"`` any meter of the label's area (an area-level label);
    ``"area_if_large"`` the label's area, when the label's meter is large
    (:data:`LARGE_METER_SHARE`, :attr:`Run.area_share`).
    """

    type: str
    on: str = "subject"


LARGE_METER_SHARE = 0.05
"""A meter expected to use at least this share of its area's energy can move the area's loss on its own."""

_LESS_METERED = (Implied("consumption_swing"), Implied("sustained_drop"), Implied("area_high_loss", "area_if_large"))

IMPLIED: dict[tuple[str, str | None], tuple[Implied, ...]] = {
    # Energy used but not metered (or not reported): the meter's consumption falls.
    ("theft_suspected", "bypass"): _LESS_METERED,
    ("theft_suspected", "h1"): _LESS_METERED,
    ("theft_suspected", "h2"): _LESS_METERED,
    ("theft_suspected", "h3"): _LESS_METERED,
    ("theft_suspected", "h4"): _LESS_METERED,
    # One phase shunted after opening the cover: the event itself, and the
    # phase carries no current under load (the current-loss and imbalance rules).
    ("theft_suspected", "tamper"): (
        *_LESS_METERED,
        Implied("tamper_event"),
        Implied("current_loss"),
        Implied("current_imbalance"),
    ),
    # Same volume, another shape: intervals far from their time-of-day baseline.
    ("theft_suspected", "h5"): (Implied("consumption_swing"),),
    ("theft_suspected", "h6"): (Implied("consumption_swing"),),
    ("voltage_loss", None): _LESS_METERED,
    ("current_loss", None): (*_LESS_METERED, Implied("current_imbalance")),
    ("zero_consumption", None): (*_LESS_METERED, Implied("meter_stopped")),
    ("meter_stopped", None): (*_LESS_METERED, Implied("zero_consumption")),
    # Single-phase reversed wiring moves all forward energy to the reverse register.
    ("reverse_energy", None): (*_LESS_METERED, Implied("zero_consumption"), Implied("meter_stopped")),
    # A genuine, lasting fall in use: consumption falls, the area's loss does not move.
    ("sustained_drop", None): (Implied("consumption_swing"),),
    ("over_capacity", None): (Implied("consumption_swing"), Implied("meter_flying")),
    ("meter_flying", None): (Implied("consumption_swing"),),
    ("interval_spike", None): (Implied("consumption_swing"),),
    # A closed account's new load may exceed the contract it had: a real over-capacity.
    ("usage_on_inactive", None): (Implied("consumption_swing"), Implied("over_capacity")),
    # A register step breaks the day's sum check (interval sum ≠ register difference).
    ("register_decrease", None): (Implied("multiplier_mismatch"),),
    # Apparent demand is kW / power factor.
    ("low_power_factor", None): (Implied("over_capacity"),),
    # Collection losses: the area's coverage and its meters' gaps.
    ("missing_data", None): (Implied("area_loss_uncomputable"), Implied("missing_data", "area_meters")),
    ("area_loss_uncomputable", None): (Implied("missing_data"), Implied("missing_data", "area_meters")),
    # The meter's energy is billed in its archived area but supplied by another.
    ("wrong_area", None): (Implied("area_negative_loss", "area"), Implied("area_high_loss", "fed_by_area")),
}
"""Anomaly (type, variant) → the other alert types it legitimately raises (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class Label:
    """A ground-truth label (schemas/label.json) with times as epoch seconds."""

    label_id: str
    kind: str
    type: str
    variant: str | None
    subject_kind: str
    subject_id: str
    area_id: str
    start: int
    end: int | None
    params: dict[str, Any]

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Label:
        end = obj.get("end")
        return cls(
            obj["label_id"], obj["kind"], obj["type"], obj.get("variant"), obj["subject_kind"], obj["subject_id"],
            obj["area_id"], parse_ts(obj["start"]), None if end is None else parse_ts(end), dict(obj.get("params") or {}),
        )  # fmt: skip

    @property
    def subject(self) -> tuple[str, str]:
        return (self.subject_kind, self.subject_id)


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert (the latest record of its id) with times as epoch seconds."""

    alert_id: str
    type: str
    subject_kind: str
    subject_id: str
    area_id: str
    first_seen: int
    last_seen: int
    severity: str
    score: float
    evidence: dict[str, Any]

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Alert:
        return cls(
            obj["alert_id"], obj["type"], obj["subject_kind"], obj["subject_id"], obj["area_id"],
            parse_ts(obj["first_seen"]), parse_ts(obj["last_seen"]), obj["severity"], float(obj["score"]),
            obj.get("evidence") or {},
        )  # fmt: skip

    @property
    def subject(self) -> tuple[str, str]:
        return (self.subject_kind, self.subject_id)


@dataclass(frozen=True, slots=True)
class Run:
    """The facts of the evaluated run the rule and the rates need."""

    interval_s: int
    end: int  # end of the run's last interval (epoch s): the end of an ongoing label
    meters: int  # customer meters in the archive
    days: float
    area_share: dict[str, float] = field(default_factory=dict)  # meter id → its expected share of its area's energy

    @property
    def meter_days(self) -> float:
        return self.meters * self.days


@dataclass(slots=True)
class Matching:
    """The verdict on every alert and label of a run."""

    labels: list[Label]
    alerts: list[Alert]
    matched: dict[str, list[Label]] = field(default_factory=dict)  # alert id → labels it matches
    explained: dict[str, list[Label]] = field(default_factory=dict)  # alert id → labels that explain it
    found_by: dict[str, list[Alert]] = field(default_factory=dict)  # label id → alerts matching it

    def verdict(self, alert: Alert) -> str:
        """``tp``, ``explained`` or ``fp``."""
        if self.matched.get(alert.alert_id):
            return "tp"
        return "explained" if self.explained.get(alert.alert_id) else "fp"

    def delay_h(self, label: Label) -> float | None:
        """Hours from the label's start to its earliest matching alert, None if missed."""
        alerts = self.found_by.get(label.label_id)
        if not alerts:
            return None
        return (min(a.first_seen for a in alerts) - label.start) / 3600.0

    def variant_of(self, alert: Alert) -> str | None:
        """The variant of the first label the alert matched (None when unmatched or unvaried)."""
        labels = self.matched.get(alert.alert_id)
        return labels[0].variant if labels else None


def _window(label: Label, type_: str, subject_kind: str, run: Run) -> tuple[int, int]:
    """Where an alert of ``type_`` about a ``subject_kind`` may start to count for (or be explained by) ``label``."""
    end = run.end if label.end is None else label.end
    return label.start - run.interval_s, end + tolerance_s(type_, subject_kind, run.interval_s)


def _explains(label: Label, implied: Implied, alert: Alert, run: Run) -> bool:
    if implied.type != alert.type:
        return False
    if implied.on == "subject":
        return alert.subject == label.subject
    if implied.on == "area":
        return alert.subject == ("area", label.area_id)
    if implied.on == "area_if_large":
        large = run.area_share.get(label.subject_id, 0.0) >= LARGE_METER_SHARE
        return large and alert.subject == ("area", label.area_id)
    if implied.on == "fed_by_area":
        return alert.subject == ("area", label.params.get("fed_by_area"))
    if implied.on == "area_meters":
        return alert.subject_kind == "meter" and alert.area_id == label.subject_id
    raise ValueError(f"unknown implication target {implied.on!r}")


def match(labels: list[Label], alerts: list[Alert], run: Run) -> Matching:
    """Apply the rule of the module docstring to a run's labels and alerts."""
    anomalies = [label for label in labels if label.kind == "anomaly"]
    result = Matching(labels=anomalies, alerts=alerts)
    by_key: dict[tuple[str, str, str], list[Label]] = defaultdict(list)
    for label in anomalies:
        by_key[(label.type, *label.subject)].append(label)
    for alert in alerts:
        hits = []
        for label in by_key.get((alert.type, *alert.subject), ()):
            lo, hi = _window(label, label.type, label.subject_kind, run)
            if lo <= alert.first_seen <= hi:
                hits.append(label)
                result.found_by.setdefault(label.label_id, []).append(alert)
        if hits:
            result.matched[alert.alert_id] = hits
            continue
        reasons = []
        for label in anomalies:
            for implied in IMPLIED.get((label.type, label.variant), ()):
                if _explains(label, implied, alert, run):
                    lo, hi = _window(label, alert.type, alert.subject_kind, run)
                    if lo <= alert.first_seen <= hi:
                        reasons.append(label)
                        break
        if reasons:
            result.explained[alert.alert_id] = reasons
    return result
