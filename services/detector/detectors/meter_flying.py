"""meter_flying (飞走): an interval's energy the meter cannot physically have measured.

Rule (shared/domain.md): interval energy above what the rated current allows,
``rated_factor × Imax × Un × phases × interval × multiplier`` (Un is the
archive's phase voltage; a line voltage there only loosens the limit), or at
least ``baseline_peak_factor`` × the meter's baseline peak interval once
``min_history_days`` of history exist and the interval is at least
``min_interval_kwh``. Only days with use teach the baseline and count as
history (an idle meter's peak of 0 is no baseline: any use would be "flying"),
and the baseline rule does not judge inactive accounts (``usage_on_inactive``
does). Energy is the pipeline's completed interval energy: a
collection gap's register lump is never booked into one interval, so a gap
cannot fire it; units are normalised by ingest (a Wh-labelled reading arrives
in kWh), so the Wh/kWh fault cannot either.

State per meter (5 B): ``peak`` float32, exponentially weighted daily peak
interval kWh (days that would fire do not teach it); ``days`` uint8, days of
history (saturates at 255).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from services.detector.archive import AreaArchive
from services.detector.day import DayView
from services.detector.detectors.base import Detector, row_findings
from services.detector.findings import Finding, exceed_score, plain
from services.detector.interval import IntervalView
from services.detector.state import Arrays
from services.detector.thresholds import Thresholds

__all__ = ["MeterFlying", "rated_limit_kwh"]


def rated_limit_kwh(archive: AreaArchive, th: Thresholds, hours: float, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
    """The most energy the meters (rows ``idx``) can measure in an interval of ``hours``, primary side (kWh)."""
    return (
        th.num("meter_flying", "rated_factor")
        * archive.max_current_a[idx]
        * archive.nominal_voltage_v[idx]
        * archive.phases[idx]
        * hours
        / 1000.0
        * archive.multiplier[idx]
    )


class MeterFlying(Detector):
    """Compares each interval with the rated limit and the meter's own peak history."""

    name: ClassVar[str] = "meter_flying"

    def init_state(self, n_meters: int) -> Arrays:
        return {"peak": np.full(n_meters, np.nan, dtype=np.float32), "days": np.zeros(n_meters, dtype=np.uint8)}

    def on_frame(self, view: IntervalView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        sec, idx = self.name, view.idx
        energy = view.energy_kwh
        rated = rated_limit_kwh(archive, th, view.frame.interval_minutes / 60.0, idx)
        factor = th.num(sec, "baseline_peak_factor")
        peak = state["peak"][idx].astype(np.float64)
        # A baseline exists only once the meter has shown min_history_days days of real use: a meter
        # that was idle (inactive, vacant, switched off) has a peak of 0, and any use at all would be
        # "infinitely many times" it. Use on an inactive account is usage_on_inactive's business.
        history = (state["days"][idx] >= th.count(sec, "min_history_days")) & (peak > 0) & archive.active[idx]
        over_rated = energy > rated
        over_peak = history & (energy >= factor * peak) & (energy >= th.num(sec, "min_interval_kwh"))
        hit = over_rated | over_peak
        if not hit.any():
            return []

        def judge(i: int) -> tuple[float, dict[str, object]]:
            score = max(
                exceed_score(energy[i], rated[i]), exceed_score(energy[i], factor * peak[i]) if over_peak[i] else 0.0
            )
            return score, {
                "energy_kwh": plain(energy[i]),
                "energy_from_registers": bool(view.derived[i]),
                "rated_limit_kwh": plain(rated[i]),
                "baseline_peak_kwh": plain(peak[i]),
                "baseline_peak_factor": factor,
                "rule": "rated" if over_rated[i] else "baseline_peak",
            }

        return row_findings(th, sec, view, hit, judge)

    def on_day(self, day: DayView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        """Teach the baseline peak from days with energy (excluding days that would have fired)."""
        sec = self.name
        has = day.energy_intervals > 0
        today = np.where(has, np.nanmax(np.where(has[:, None], day.energy, 0.0), axis=1), np.nan)
        peak = state["peak"]
        flying = (state["days"] >= th.count(sec, "min_history_days")) & (
            today >= th.num(sec, "baseline_peak_factor") * peak
        )
        # Only days of use teach it: an idle day's peak of 0 is no baseline (see on_frame).
        learn = has & (today > 0) & ~flying
        alpha = 2.0 / (th.num(sec, "baseline_days") + 1.0)
        peak[learn] = np.where(np.isnan(peak[learn]), today[learn], peak[learn] + alpha * (today[learn] - peak[learn]))
        state["days"][learn] = np.minimum(state["days"][learn].astype(np.int16) + 1, 255)
        return []
