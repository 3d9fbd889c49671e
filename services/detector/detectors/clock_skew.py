"""clock_skew (时钟超差): the meter's clock is off.

Rule (shared/domain.md): ``|meter clock − interval end| > max_offset_s``
(ingest puts the offset in the frame's ``clock_offset_s``). A meter's own
``clock_error`` event (``event_codes``) states the same fault and fires too.
Stateless.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from services.detector.archive import AreaArchive
from services.detector.detectors.base import Detector, event_findings, row_findings
from services.detector.findings import Finding, exceed_score, plain
from services.detector.interval import IntervalView
from services.detector.state import Arrays
from services.detector.thresholds import Thresholds

__all__ = ["ClockSkew"]


class ClockSkew(Detector):
    """Fires on every reading whose clock offset exceeds the limit, and on clock-error events."""

    name: ClassVar[str] = "clock_skew"

    def on_frame(self, view: IntervalView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        limit = th.num(self.name, "max_offset_s")
        offset = view.frame.clock_offset_s
        size = np.abs(offset)
        hit = size > limit

        def judge(i: int) -> tuple[float, dict[str, object]]:
            return exceed_score(size[i], limit), {"clock_offset_s": plain(offset[i], 1), "max_offset_s": limit}

        return row_findings(th, self.name, view, hit, judge) + event_findings(
            th, self.name, view, th.texts(self.name, "event_codes")
        )
