"""AlertBook: folds findings into alert records (``ami.alerts``), one open alert per (type, subject).

Rules (schemas/README.md, "Alert"):

- The first finding for a (type, subject kind, subject id) with no open alert
  opens one: ``op: open``, ``first_seen`` = the finding's event time,
  ``alert_id`` = sha256 of ``type|subject_kind|subject_id|first_seen`` (ISO),
  so a replay of the same frames gives the same ids.
- Later findings for the same key fold into it: ``last_seen`` = the latest
  event time seen, ``severity`` and ``score`` = the maximum seen since the
  alert opened (an alert is as strong as its strongest evidence; a dip does not
  flap the record), ``evidence`` = the latest finding's.
- A folded alert emits ``op: update`` only on a material change: severity
  rose, score rose by at least ``[alerts] update_min_score_delta``, or
  ``[alerts] update_refresh_h`` of event time passed since its last record
  (a bounded heartbeat carrying the latest evidence). Findings folded in one
  call emit at most one record per alert.
- A finding whose type lists ``attach_to`` types (``tamper_event`` →
  ``theft_suspected``) is also attached to the open alert of those types for
  the same subject (``evidence.attached``, the latest ``[alerts] max_attached``),
  which emits an update: a tamper event joins the open theft case at once.
- An alert with no finding for ``resolve_quiet_h`` of its type (event time,
  per area) resolves: ``op: resolve``, ``status: resolved``. A later finding
  opens a new alert with a new id.

The book's state is plain JSON (:meth:`to_state`/:meth:`from_state`) so it
travels inside the area's state record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from services.detector.eventtime import format_ts
from services.detector.findings import SEVERITIES, Finding, severity_rank
from services.detector.thresholds import Thresholds

__all__ = ["AlertBook", "OpenAlert", "alert_id"]

AlertKey = tuple[str, str, str]


def alert_id(type_: str, subject_kind: str, subject_id: str, first_seen: int) -> str:
    """Hex SHA-256 of ``type|subject_kind|subject_id|first_seen`` (first_seen as ISO Z)."""
    raw = f"{type_}|{subject_kind}|{subject_id}|{format_ts(first_seen)}"
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(slots=True)
class OpenAlert:
    """An open alert and what was last emitted for it (to decide whether an update is material)."""

    type: str
    subject_kind: str
    subject_id: str
    area_id: str
    first_seen: int
    last_seen: int
    severity: str
    score: float
    evidence: dict[str, Any]
    attached: list[dict[str, Any]] = field(default_factory=list)  # other findings attached to this case
    emitted_at: int = -1  # last_seen of the last emitted record; -1: not emitted yet
    emitted_severity: str = SEVERITIES[0]
    emitted_score: float = 0.0
    alert_id: str = field(init=False)

    def __post_init__(self) -> None:
        self.alert_id = alert_id(self.type, self.subject_kind, self.subject_id, self.first_seen)

    def record(self, op: str) -> dict[str, Any]:
        """The alert as an ``ami.alerts`` record with ``op``."""
        return {
            "alert_id": self.alert_id,
            "op": op,
            "type": self.type,
            "subject_kind": self.subject_kind,
            "subject_id": self.subject_id,
            "area_id": self.area_id,
            "severity": self.severity,
            "score": round(self.score, 4),
            "status": "resolved" if op == "resolve" else "open",
            "first_seen": format_ts(self.first_seen),
            "last_seen": format_ts(self.last_seen),
            "evidence": {**self.evidence, "attached": self.attached} if self.attached else self.evidence,
        }


_STATE_FIELDS = (
    "type", "subject_kind", "subject_id", "area_id", "first_seen", "last_seen",
    "severity", "score", "evidence", "attached", "emitted_at", "emitted_severity", "emitted_score",
)  # fmt: skip


class AlertBook:
    """The open alerts of one area, keyed by (type, subject kind, subject id)."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: dict[AlertKey, OpenAlert] = {}

    def __len__(self) -> int:
        return len(self._open)

    def open_alerts(self) -> list[OpenAlert]:
        """The open alerts in key order."""
        return [self._open[k] for k in sorted(self._open)]

    def get(self, type_: str, subject_kind: str, subject_id: str) -> OpenAlert | None:
        """The open alert of a key, if any."""
        return self._open.get((type_, subject_kind, subject_id))

    def apply(self, findings: Iterable[Finding], th: Thresholds) -> list[dict[str, Any]]:
        """Fold findings in; return the ``open``/``update`` records they cause (at most one per alert)."""
        touched: dict[AlertKey, bool] = {}  # key → must emit (something was attached)
        keep = th.count("alerts", "max_attached")
        for f in findings:
            key = (f.type, f.subject_kind, f.subject_id)
            alert = self._open.get(key)
            if alert is None:
                self._open[key] = OpenAlert(
                    f.type, f.subject_kind, f.subject_id, f.area_id, f.ts, f.ts, f.severity, f.score, f.evidence
                )
            else:
                if f.ts >= alert.last_seen:
                    alert.last_seen = f.ts
                    alert.evidence = f.evidence
                if severity_rank(f.severity) > severity_rank(alert.severity):
                    alert.severity = f.severity
                alert.score = max(alert.score, f.score)
            touched[key] = touched.get(key, False)
            for target in th.section(f.type).get("attach_to", ()):  # type: ignore[union-attr]
                case_key = (str(target), f.subject_kind, f.subject_id)
                case = self._open.get(case_key)
                if case is not None and keep > 0:
                    case.attached = [*case.attached, {"type": f.type, "at": format_ts(f.ts), **f.evidence}][-keep:]
                    touched[case_key] = True
        delta = th.num("alerts", "update_min_score_delta")
        refresh = int(th.num("alerts", "update_refresh_h") * 3600)
        out: list[dict[str, Any]] = []
        for key, attached in touched.items():
            alert = self._open[key]
            if alert.emitted_at < 0:
                op = "open"
            elif (
                attached
                or severity_rank(alert.severity) > severity_rank(alert.emitted_severity)
                or alert.score >= alert.emitted_score + delta
                or alert.last_seen - alert.emitted_at >= refresh
            ):
                op = "update"
            else:
                continue
            alert.emitted_at = alert.last_seen
            alert.emitted_severity = alert.severity
            alert.emitted_score = alert.score
            out.append(alert.record(op))
        return out

    def expire(self, now: int, th: Thresholds) -> list[dict[str, Any]]:
        """Resolve every alert whose type's quiet period has passed at event time ``now``."""
        out: list[dict[str, Any]] = []
        for key in sorted(self._open):
            alert = self._open[key]
            if now - alert.last_seen >= th.quiet_s(alert.type):
                del self._open[key]
                out.append(alert.record("resolve"))
        return out

    def to_state(self) -> list[list[Any]]:
        """JSON-able state, in key order (deterministic bytes)."""
        return [[getattr(a, f) for f in _STATE_FIELDS] for a in self.open_alerts()]

    @classmethod
    def from_state(cls, rows: list[list[Any]]) -> AlertBook:
        """The book :meth:`to_state` described."""
        book = cls()
        for row in rows:
            alert = OpenAlert(**dict(zip(_STATE_FIELDS, row, strict=True)))
            book._open[(alert.type, alert.subject_kind, alert.subject_id)] = alert
        return book
