"""missing_data (采集失败): readings do not arrive, for a meter or for a whole area.

Rules (shared/domain.md): a meter with no reading for at least
``min_intervals`` intervals; an area whose collection rate (readings
received / active meters × intervals) falls below
``min_area_collection_pct``, over the whole day or over any window of
``area_window_h`` hours within it (a concentrator that loses a tenth of its
meters for two hours is a collection failure, but costs the day's rate less
than 1 %). A window's shortfall must be spread over at least
``area_min_meters`` meters: one silent meter in a small area is that
meter's alert, not the area's. Both are judged when the day closes, from
every reading that arrived by then (late uploads within the day's grace
count as collected). Only active meters are expected to report. A
meter's silence is counted from its last reading, or from the first frame the
area's state saw it in; a day the stream did not cover whole (the area's first
day, a day flushed before its end) is not judged for the area rate. Late
readings that arrive afterwards close the gap (the alert resolves after its
quiet period); they do not retract what was already raised.

State per meter (4 B): ``last`` uint32 epoch s, interval end of the latest reading (or
of the interval before the meter was first expected).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from services.detector.archive import AreaArchive
from services.detector.day import DayView
from services.detector.detectors.base import Detector
from services.detector.eventtime import format_ts
from services.detector.findings import Finding, exceed_score, plain
from services.detector.interval import IntervalView
from services.detector.state import Arrays
from services.detector.thresholds import Thresholds

__all__ = ["MissingData"]


class MissingData(Detector):
    """Per meter: intervals since the last reading; per area: the daily collection rate."""

    name: ClassVar[str] = "missing_data"

    def init_state(self, n_meters: int) -> Arrays:
        return {"last": np.zeros(n_meters, dtype=np.uint32)}

    def on_frame(self, view: IntervalView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        last = state["last"]
        np.maximum.at(last, view.idx, view.ts)
        if view.late:
            return []
        step = view.frame.interval_s
        last[last == 0] = view.ts - step  # first expected now: the previous interval counts as seen
        gap = (view.ts - last.astype(np.int64)) // step
        min_intervals = th.count(self.name, "min_intervals")
        hit = archive.active & (gap >= min_intervals)
        if not hit.any():
            return []
        rows = np.flatnonzero(hit)
        # Findings are about meters absent from the frame: address them by archive row, not frame row.
        return [
            Finding.of(
                th,
                self.name,
                archive.meter_ids[r],
                view.area_id,
                view.ts,
                exceed_score(gap[r], min_intervals),
                {
                    "silent_since": format_ts(int(last[r])),
                    "missing_intervals": int(gap[r]),
                    "min_intervals": min_intervals,
                },
            )
            for r in rows
        ]

    def _worst_window(self, day: DayView, active: np.ndarray, th: Thresholds) -> tuple[int, float, int] | None:
        """The window of the day with the lowest collection rate among those that fail: (start slot, rate %, meters short)."""
        if day.seen is None:
            return None
        w = max(1, round(th.num(self.name, "area_window_h") * 60 / day.interval_minutes))
        missing = ~day.seen[active]  # [k, ipd]
        k, ipd = missing.shape
        if w >= ipd:
            return None
        per_meter = np.concatenate([np.zeros((k, 1), np.int32), np.cumsum(missing, axis=1, dtype=np.int32)], axis=1)
        in_window = per_meter[:, w:] - per_meter[:, :-w]  # [k, windows]: each meter's missing intervals per window
        rates = 100.0 * (1.0 - in_window.sum(axis=0) / (k * w))
        meters = np.count_nonzero(in_window, axis=0)
        bad = (rates < th.num(self.name, "min_area_collection_pct")) & (meters >= th.count(self.name, "area_min_meters"))
        if not bad.any():
            return None
        j = int(np.flatnonzero(bad)[np.argmin(rates[bad])])
        return j, float(rates[j]), int(meters[j])

    def on_day(self, day: DayView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        """The area's collection rate of the closed day, and of its worst window."""
        if not day.complete or not archive.active.any():
            return []
        expected = int(archive.active.sum()) * day.intervals_per_day
        got = int(np.minimum(day.reported[archive.active], day.intervals_per_day).sum())
        rate = got / expected * 100
        limit = th.num(self.name, "min_area_collection_pct")
        window = self._worst_window(day, archive.active, th)
        if rate >= limit and window is None:
            return []
        short = int((day.reported[archive.active] < day.intervals_per_day).sum())
        worst = rate if window is None else min(rate, window[1])
        window_evidence = {}
        if window is not None:
            start = day.day_start + window[0] * day.interval_minutes * 60
            window_evidence = {
                "window_start": format_ts(start),
                "window_h": th.num(self.name, "area_window_h"),
                "window_collection_pct": plain(window[1], 2),
                "window_meters_short": window[2],
            }
        return [
            Finding.of(
                th,
                self.name,
                day.area_id,
                day.area_id,
                day.end,
                exceed_score(100 - worst, 100 - limit),
                {
                    "date": day.date.isoformat(),
                    "collection_pct": plain(rate, 2),
                    "min_collection_pct": limit,
                    "readings": got,
                    "expected_readings": expected,
                    "meters_incomplete": short,
                    **window_evidence,
                },
                subject_kind="area",
            )
        ]
