"""duplicate_data: the same meter and interval delivered twice with different values.

Rule (shared/domain.md): the second value differs from the first by more than
``max_diff_pct`` % (of the larger magnitude); identical duplicates are merged
silently. The conflicts come from ingest (``conflicts`` of the frame) and from
the pipeline (a late reading for an interval already received). The first
value is the one kept. Stateless.
"""

from __future__ import annotations

from typing import ClassVar

from services.detector.archive import AreaArchive
from services.detector.detectors.base import Detector
from services.detector.eventtime import format_ts
from services.detector.findings import Finding, exceed_score, plain
from services.detector.interval import IntervalView
from services.detector.state import Arrays
from services.detector.thresholds import Thresholds

__all__ = ["DuplicateData"]


class DuplicateData(Detector):
    """One finding per conflicting second delivery."""

    name: ClassVar[str] = "duplicate_data"

    def on_frame(self, view: IntervalView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        limit = th.num(self.name, "max_diff_pct")
        out: list[Finding] = []
        for c in view.conflicts:
            scale = max(abs(c.kept), abs(c.other))
            pct = abs(c.other - c.kept) / scale * 100 if scale > 0 else 0.0
            if pct > limit:
                evidence = {
                    "interval_end": format_ts(view.ts),
                    "field": c.field,
                    "kept": plain(c.kept),
                    "other": plain(c.other),
                    "diff_pct": plain(pct, 3),
                    "max_diff_pct": limit,
                }
                out.append(
                    Finding.of(th, self.name, c.meter_id, view.area_id, view.ts, exceed_score(pct, limit), evidence)
                )
        return out
