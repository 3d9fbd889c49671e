"""meter_stopped (停走): the forward register stands still while the meter should be counting.

Rule (shared/domain.md): register unchanged for ≥ ``min_hours`` while current
flows or the meter's history says it normally uses ≥ ``min_history_kwh_day``.
A stall is measured from the reading at which the register last moved, and
must be *seen*: readings must cover at least ``min_coverage`` of its
intervals, so a collection gap (no readings) is never taken for a stall.
Current decides when the stall's readings carry current: a phase above
``flow_current_pct_ib`` % of basic current in at least ``min_flow_fraction``
of them. When they carry none, the history decides; a stall whose readings
show current but no flow is an idle installation, not a stopped meter.

State per meter (14 B): ``since`` uint32 epoch s (interval end at which the register
last moved or the baseline started; 0 none), ``n_read``/``n_cur``/``n_flow``
uint16 (stall readings: all, with current data, with current flowing),
``hist`` float32 (exponentially weighted kWh/day of days the register moved).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from services.detector.archive import AreaArchive
from services.detector.day import DayView
from services.detector.detectors.base import Detector, row_findings
from services.detector.eventtime import format_ts
from services.detector.findings import Finding, exceed_score, plain
from services.detector.interval import IntervalView
from services.detector.state import Arrays
from services.detector.thresholds import Thresholds

__all__ = ["MeterStopped"]

_U16_MAX = np.iinfo(np.uint16).max


class MeterStopped(Detector):
    """Counts each meter's stall readings and fires once the stall is long, observed and under load."""

    name: ClassVar[str] = "meter_stopped"

    def init_state(self, n_meters: int) -> Arrays:
        return {
            "since": np.zeros(n_meters, dtype=np.uint32),
            "n_read": np.zeros(n_meters, dtype=np.uint16),
            "n_cur": np.zeros(n_meters, dtype=np.uint16),
            "n_flow": np.zeros(n_meters, dtype=np.uint16),
            "hist": np.full(n_meters, np.nan, dtype=np.float32),
        }

    def on_frame(self, view: IntervalView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        sec = self.name
        idx, ts = view.idx, view.ts
        register = view.frame.register_fwd_kwh
        has_reg = ~np.isnan(register)
        newer = view.prev_register_ts < ts
        step = th.num("pipeline", "register_resolution_kwh")
        still = np.abs(register - view.prev_register_fwd_kwh) < 0.5 * step  # False where either is NaN
        restart = has_reg & newer & ~still  # moved, replaced, or first register: the stall clock restarts
        rows = idx[restart]
        state["since"][rows] = ts
        for key in ("n_read", "n_cur", "n_flow"):
            state[key][rows] = 0
        if not still.any():
            return []
        cur = view.frame.current
        ib = archive.basic_current_a[idx]
        flowing = np.where(np.isnan(cur), -np.inf, cur).max(axis=1) > th.num(sec, "flow_current_pct_ib") / 100 * ib
        rows = idx[still]
        state["n_read"][rows] = np.minimum(state["n_read"][rows] + 1, _U16_MAX)
        state["n_cur"][rows] += (~np.isnan(cur[still]).all(axis=1)) & (state["n_cur"][rows] < _U16_MAX)
        state["n_flow"][rows] += flowing[still] & (state["n_flow"][rows] < _U16_MAX)

        since = state["since"][idx].astype(np.int64)
        hours = (ts - since) / 3600.0
        n_read = state["n_read"][idx].astype(np.float64)
        n_cur = state["n_cur"][idx].astype(np.float64)
        n_flow = state["n_flow"][idx].astype(np.float64)
        hist = state["hist"][idx].astype(np.float64)
        expected = (ts - since) / view.frame.interval_s
        min_hours = th.num(sec, "min_hours")
        observed = n_read >= th.num(sec, "min_coverage") * expected
        flow_ok = n_flow >= th.num(sec, "min_flow_fraction") * n_cur
        loaded = np.where(n_cur > 0, flow_ok, hist >= th.num(sec, "min_history_kwh_day"))
        hit = still & (since > 0) & (hours >= min_hours) & observed & loaded

        def judge(i: int) -> tuple[float, dict[str, object]]:
            return exceed_score(hours[i], min_hours), {
                "register_kwh": plain(register[i]),
                "unchanged_since": format_ts(int(since[i])),
                "unchanged_hours": plain(hours[i], 2),
                "min_hours": min_hours,
                "readings_in_stall": int(n_read[i]),
                "readings_with_current_flow": int(n_flow[i]),
                "readings_with_current_data": int(n_cur[i]),
                "history_kwh_day": plain(hist[i], 3),
            }

        return row_findings(th, sec, view, hit, judge)

    def on_day(self, day: DayView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        """Teach the daily-use history from full days on which the register moved."""
        alpha = 2.0 / (th.num(self.name, "history_days") + 1.0)
        full = day.energy_intervals >= day.intervals_per_day
        learn = full & (state["since"] > day.day_start)
        hist = state["hist"]
        daily = day.daily_kwh.astype(np.float32)
        hist[learn] = np.where(np.isnan(hist[learn]), daily[learn], hist[learn] + alpha * (daily[learn] - hist[learn]))
        return []
