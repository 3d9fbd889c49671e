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

A spike the meter's own measurements back is consumption, not an
implausible interval, and nothing fires (a heater, a kettle, a pump).
Where the reading carries the interval's demand (the peak of its sliding
average power, so at least its mean), the demand decides: it backs the
interval when demand × interval is within ``demand_match_pct`` of the
reported energy. Otherwise the instantaneous values decide, which are one
sample of the current (a household's load cycles within minutes): the
energy the interval's phase voltages, currents and power factor imply
(Σ V·I·pf × interval × multiplier) backs it when it is itself above the
day's third-highest by more than the tolerance, or within
``instantaneous_match_pct`` of the reported energy. A reported interval
its measurements do not back (a corrupted value, a register glitch) still
fires; so does one without demand or instantaneous values.

The demand can also refute an interval: energy above demand × interval
is more than the load's peak average power could deliver in it. Where
the reported energy exceeds a positive demand × interval by more than
``demand_refutes_pct``, the interval fires without the peak-history
condition (the day's shape still has to hold): a spike capped at the
meter's rating on a meter whose normal peaks reach half of it is never
twice its history, but its own demand register says the load was not
there.

An interval above what the meter's rated current allows is meter_flying's
(the catalogue's 飞走, one alert per fact): it neither fires nor teaches
the peak history (a flying day that taught it would hide the meter's real
spikes for weeks).

State per meter (37 B): ``peak`` float32 the decayed running maximum of
daily peaks, ``days`` uint8 days of history (saturating at 255); for the
open day and the next one (rows by epoch day mod 2): ``top_day`` int32 the
epoch day, ``top_kwh`` float32 its highest interval so far, ``top_vi_kwh``
and ``top_demand_kwh`` float32 the energy its instantaneous values and its
demand imply.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from services.detector.archive import AreaArchive
from services.detector.day import DayView
from services.detector.detectors.base import Detector
from services.detector.detectors.meter_flying import rated_limit_kwh
from services.detector.eventtime import DAY_S, day_start_of_interval
from services.detector.findings import Finding, exceed_score, plain
from services.detector.interval import IntervalView
from services.detector.state import Arrays
from services.detector.thresholds import Thresholds

__all__ = ["IntervalSpike"]


class IntervalSpike(Detector):
    """Top interval vs the day's third-highest and the meter's peak history."""

    name: ClassVar[str] = "interval_spike"

    def init_state(self, n_meters: int) -> Arrays:
        return {
            "peak": np.full(n_meters, np.nan, np.float32),
            "days": np.zeros(n_meters, np.uint8),
            "top_day": np.full((n_meters, 2), -1, np.int32),
            "top_kwh": np.full((n_meters, 2), np.nan, np.float32),
            "top_vi_kwh": np.full((n_meters, 2), np.nan, np.float32),
            "top_demand_kwh": np.full((n_meters, 2), np.nan, np.float32),
        }

    def on_frame(self, view: IntervalView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        """Remember, per meter and day, the highest interval and the energy its V, I and pf imply."""
        idx, frame = view.idx, view.frame
        if not len(idx):
            return []
        day_no = day_start_of_interval(frame.ts) // DAY_S
        row = day_no % 2
        older = state["top_day"][idx, row] > day_no  # a late reading of a closed day: its row is a newer day's now
        energy, vi_kwh = view.energy_kwh, view.instantaneous_kwh
        demand_kwh = frame.demand_kw * (frame.interval_minutes / 60.0)
        if older.any():
            keep = ~older
            idx, energy, vi_kwh, demand_kwh = idx[keep], energy[keep], vi_kwh[keep], demand_kwh[keep]
        stale = state["top_day"][idx, row] != day_no
        if stale.any():
            state["top_day"][idx[stale], row] = day_no
            state["top_kwh"][idx[stale], row] = np.nan
            state["top_vi_kwh"][idx[stale], row] = np.nan
            state["top_demand_kwh"][idx[stale], row] = np.nan
        higher = ~np.isnan(energy) & ~(energy <= state["top_kwh"][idx, row])  # NaN top: anything is higher
        if not higher.any():
            return []
        rows = idx[higher]
        state["top_kwh"][rows, row] = energy[higher]
        state["top_vi_kwh"][rows, row] = vi_kwh[higher]
        state["top_demand_kwh"][rows, row] = demand_kwh[higher]
        return []

    def _confirmed(
        self, day: DayView, first: np.ndarray, third: np.ndarray, over: float, state: Arrays, th: Thresholds
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per meter: whether the day's highest interval is backed by its own demand or instantaneous values (real
        load), and the energy each implies for it (NaN: unknown)."""
        day_no = day.day_start // DAY_S
        row = day_no % 2
        same = (state["top_day"][:, row] == day_no) & np.isclose(state["top_kwh"][:, row], first, rtol=1e-5)
        vi = np.where(same, state["top_vi_kwh"][:, row].astype(np.float64), np.nan)
        demand = np.where(same, state["top_demand_kwh"][:, row].astype(np.float64), np.nan)
        match = th.num(self.name, "instantaneous_match_pct") / 100.0
        with np.errstate(invalid="ignore"):
            by_demand = demand >= first * (1.0 - th.num(self.name, "demand_match_pct") / 100.0)
            by_sample = (vi > third * (1.0 + over)) | (vi >= first * (1.0 - match))
        return same & np.where(np.isnan(demand), by_sample, by_demand), vi, demand

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
        flying = first > rated_limit_kwh(archive, th, day.interval_minutes / 60.0)  # meter_flying's, not a spike
        has &= ~flying
        shape = has & history & (first > third * (1.0 + over)) & (first >= th.num(sec, "min_interval_kwh"))
        above_history = first > peak * (1.0 + th.num(sec, "over_peak_history_pct") / 100.0)
        confirmed, vi, demand = self._confirmed(day, first, third, over, state, th)
        with np.errstate(invalid="ignore"):
            refuted = (demand > 0) & (first > demand * (1.0 + th.num(sec, "demand_refutes_pct") / 100.0))
        hit = shape & (above_history | refuted) & ~confirmed
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
                "instantaneous_kwh": plain(vi[i]),  # what V·I·pf imply for that interval (null: unknown)
                "demand_kwh": plain(demand[i]),  # what its demand implies (null: unknown)
                "judged_by": "peak history" if above_history[i] else "demand",
            }
            score = exceed_score(first[i], third[i] * (1.0 + over))
            out.append(Finding.of(th, sec, archive.meter_ids[i], day.area_id, day.end, score, evidence))
        return out
