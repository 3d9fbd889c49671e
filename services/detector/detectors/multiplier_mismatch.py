"""multiplier_mismatch (倍率不符): reported energy ≠ register difference × archived multiplier.

Rule (shared/domain.md): reported interval energy differs from the register
difference × archived multiplier by more than ``max_diff_pct`` %; and a day's
interval sum differs from its register difference (sum check). An interval is
comparable when it has reported energy and a register exactly one interval
after the previous one. Rounding is not a mismatch: the tolerance is at least
one register step × multiplier, and an interval check fires only after
``min_intervals`` consecutive comparable mismatches. The daily check compares
the sums over the day's comparable intervals, where the register differences
telescope, so rounding does not add up; it catches a wrong multiplier at low
loads that single intervals cannot resolve. Evidence carries the multiplier
the data implies (reported / register difference).

State per meter (9 B): ``run`` uint8 (consecutive mismatching intervals),
``sum_reported``/``sum_register`` float32 (the day's comparable kWh: reported,
and register difference × multiplier).
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

__all__ = ["MultiplierMismatch"]


def _mismatch(
    reported: np.ndarray, register: np.ndarray, pct: float, floor: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(relative difference %, over tolerance) of reported vs. register-derived kWh."""
    diff = np.abs(reported - register)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(register > 0, diff / register * 100, np.inf)
    return rel, diff > np.maximum(pct / 100 * np.abs(register), floor)


class MultiplierMismatch(Detector):
    """Interval check with a run length, daily sum check at day close."""

    name: ClassVar[str] = "multiplier_mismatch"

    def init_state(self, n_meters: int) -> Arrays:
        return {
            "run": np.zeros(n_meters, dtype=np.uint8),
            "sum_reported": np.zeros(n_meters, dtype=np.float32),
            "sum_register": np.zeros(n_meters, dtype=np.float32),
        }

    def on_frame(self, view: IntervalView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        sec, idx, frame = self.name, view.idx, view.frame
        reported = frame.energy_kwh
        register = view.register_delta_kwh
        comparable = ~np.isnan(reported) & (register >= 0) & (view.ts - view.prev_register_ts == frame.interval_s)
        if not comparable.any():
            return []
        mult = archive.multiplier[idx]
        rows = idx[comparable]
        state["sum_reported"][rows] += reported[comparable]
        state["sum_register"][rows] += register[comparable]
        floor = th.num("pipeline", "register_resolution_kwh") * mult
        pct = th.num(sec, "max_diff_pct")
        rel, bad = _mismatch(reported, register, pct, floor)
        bad &= comparable
        run = state["run"]
        run[rows] = np.where(bad[comparable], np.minimum(run[rows].astype(np.int16) + 1, 255), 0)
        hit = bad & (run[idx] >= th.count(sec, "min_intervals"))

        def judge(i: int) -> tuple[float, dict[str, object]]:
            secondary = register[i] / mult[i]
            return exceed_score(rel[i], pct), {
                "check": "interval",
                "reported_kwh": plain(reported[i]),
                "register_diff_kwh": plain(secondary),
                "archived_multiplier": plain(mult[i]),
                "register_energy_kwh": plain(register[i]),
                "implied_multiplier": plain(reported[i] / secondary) if secondary > 0 else None,
                "diff_pct": plain(rel[i], 2),
                "max_diff_pct": pct,
                "consecutive_intervals": int(run[idx[i]]),
            }

        return row_findings(th, sec, view, hit, judge)

    def on_day(self, day: DayView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        """The sum check over the day's comparable intervals; the sums restart."""
        sec = self.name
        reported = state["sum_reported"].astype(np.float64)
        register = state["sum_register"].astype(np.float64)
        state["sum_reported"][:] = 0
        state["sum_register"][:] = 0
        pct = th.num(sec, "daily_max_diff_pct")
        floor = 2 * th.num("pipeline", "register_resolution_kwh") * archive.multiplier
        rel, bad = _mismatch(reported, register, pct, floor)
        hit = bad & (register > 0)
        return [
            Finding.of(
                th,
                sec,
                day.meter_ids[i],
                day.area_id,
                day.end,
                exceed_score(rel[i], pct),
                {
                    "check": "daily_sum",
                    "date": day.date.isoformat(),
                    "reported_sum_kwh": plain(reported[i]),
                    "register_energy_kwh": plain(register[i]),
                    "archived_multiplier": plain(archive.multiplier[i]),
                    "implied_multiplier": plain(reported[i] / register[i] * archive.multiplier[i]),
                    "diff_pct": plain(rel[i], 2),
                    "max_diff_pct": pct,
                },
            )
            for i in np.flatnonzero(hit)
        ]
