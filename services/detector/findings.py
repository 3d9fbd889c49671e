"""A detector's statement that something anomalous was seen: the input of the AlertBook.

A finding is per subject and event time; detectors may repeat a finding every
interval or day while a condition lasts, and the AlertBook folds repeats into
one open alert. Evidence holds plain JSON values (numbers, strings, lists of
them) — the numbers a person needs to believe the finding: observed vs.
baseline, the thresholds applied, the events seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from services.detector.thresholds import Thresholds

__all__ = ["Finding", "SubjectKind", "SEVERITIES", "severity_rank", "plain", "exceed_score"]

SubjectKind = Literal["meter", "area"]

# Ordered from least to most severe (schemas/README.md, alert `severity`).
SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")


def plain(value: float, digits: int = 4) -> float | None:
    """A numpy/Python number as a rounded JSON float for evidence (None for NaN)."""
    v = float(value)
    return None if math.isnan(v) else round(v, digits)


def exceed_score(observed: float, limit: float) -> float:
    """Score of a value beyond its limit: 0.5 at the limit, 0.75 at twice it, → 1 far beyond.

    ``1 − 0.5 · limit / observed``, so a rule's scores rank its findings by how
    far past the threshold they are; a non-positive limit scores 1, an
    observation not beyond a positive limit (or NaN) 0.5.
    """
    observed, limit = float(observed), float(limit)
    if not limit > 0:
        return 1.0
    if not observed > limit:
        return 0.5
    return min(1.0, 1.0 - 0.5 * limit / observed)


def severity_rank(severity: str) -> int:
    """Position of ``severity`` in :data:`SEVERITIES` (ValueError if unknown)."""
    return SEVERITIES.index(severity)


@dataclass(frozen=True, slots=True)
class Finding:
    """One anomaly observation about one subject at one event time.

    ``ts`` is the event time (epoch s) the observation refers to: the interval
    end for per-interval rules, the day's end for per-day rules, the event's
    own time for meter events. ``score`` is in [0, 1].
    """

    type: str
    subject_kind: SubjectKind
    subject_id: str
    area_id: str
    ts: int
    severity: str
    score: float
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        severity_rank(self.severity)
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score {self.score} outside [0, 1] for {self.type}")

    @classmethod
    def of(
        cls,
        th: Thresholds,
        type_: str,
        subject_id: str,
        area_id: str,
        ts: int,
        score: float,
        evidence: dict[str, Any],
        subject_kind: SubjectKind = "meter",
    ) -> Finding:
        """A finding with the type's configured severity and the score clipped to [0, 1]."""
        return cls(
            type_,
            subject_kind,
            subject_id,
            area_id,
            int(ts),
            th.severity(type_),
            min(1.0, max(0.0, float(score))),
            evidence,
        )
