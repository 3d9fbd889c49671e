"""interval_spike: one interval implausibly above the rest of its day.

Rule (shared/domain.md): the day's highest interval exceeds its
third-highest by more than ``max_over_third_pct`` (the third, not the
second, so two neighbouring intervals of one real appliance cycle do not
hide each other) and exceeds the meter's own peak history by more than
``over_peak_history_pct``; the history is a running maximum of its daily
peaks that halves over ``peak_half_life_days``, so a meter that
regularly peaks that high (a daily kettle, a pump) is left alone, once
``min_history_days`` days of history exist, and is at least
``min_interval_kwh``. A spike day does not teach the peak history.
Intervals come from the pipeline's completed energy: a collection gap's
register lump is never booked into one interval, so gaps cannot fire it.

State per meter (5 B): ``peak`` float32 the decayed running maximum of
daily peaks, ``days`` uint8 days of history (saturating at 255).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from services.detector.archive import AreaArchive
from services.detector.day import DayView
from services.detector.detectors.base import Detector
from services.detector.findings import Finding, exceed_score, plain
from services.detector.state import Arrays
from services.detector.thresholds import Thresholds

__all__ = ["IntervalSpike"]


class IntervalSpike(Detector):
    """Top interval vs the day's third-highest and the meter's peak history."""

    name: ClassVar[str] = "interval_spike"

    def init_state(self, n_meters: int) -> Arrays:
        return {"peak": np.full(n_meters, np.nan, np.float32), "days": np.zeros(n_meters, np.uint8)}

    def on_day(self, day: DayView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        sec = self.name
        energy = np.where(np.isnan(day.energy), -np.inf, day.energy.astype(np.float64))
        has = day.energy_intervals >= 3
        if energy.shape[1] < 3:
            return []
        top3 = -np.sort(-np.partition(energy, -3, axis=1)[:, -3:], axis=1)
        first, third = top3[:, 0], top3[:, 2]
        over = th.num(sec, "max_over_third_pct") / 100.0
        peak = state["peak"].astype(np.float64)
        history = state["days"] >= th.count(sec, "min_history_days")
        hit = (
            has
            & history
            & (first > third * (1.0 + over))
            & (first > peak * (1.0 + th.num(sec, "over_peak_history_pct") / 100.0))
            & (first >= th.num(sec, "min_interval_kwh"))
        )
        # Learn today's peak unless it is the spike: decay the record, keep the larger.
        decay = 0.5 ** (1.0 / th.num(sec, "peak_half_life_days"))
        learn = has & ~hit
        state["peak"][learn] = np.fmax(peak[learn] * decay, first[learn])
        state["days"][learn] = np.minimum(state["days"][learn].astype(np.int16) + 1, 255)
        minutes = day.interval_minutes
        out = []
        for i in np.flatnonzero(hit):
            slot = int(np.argmax(energy[i]))
            evidence = {
                "interval_end_minute": (slot + 1) * minutes,
                "highest_kwh": plain(first[i]),
                "third_highest_kwh": plain(third[i]),
                "over_third_pct": plain(100.0 * (first[i] / third[i] - 1.0), 1) if third[i] > 0 else None,
                "peak_history_kwh": plain(peak[i]),
                "max_over_third_pct": th.num(sec, "max_over_third_pct"),
            }
            score = exceed_score(first[i], third[i] * (1.0 + over))
            out.append(Finding.of(th, sec, archive.meter_ids[i], day.area_id, day.end, score, evidence))
        return out
