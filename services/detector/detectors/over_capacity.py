"""over_capacity (超容): the customer draws more than the contracted capacity.

Rule (shared/domain.md): demand above contracted capacity for at least
``min_intervals`` consecutive intervals. Capacity is apparent power (kVA) and
demand is active power (kW), so the comparison is ``demand_kw / pf`` (S = P /
cos φ) against ``min_ratio × contracted_kva``; the reported power factor is
clipped to at least ``min_power_factor`` so a junk value cannot inflate S, and
without one the demand itself is compared (P ≤ S: conservative). Without a
demand reading the interval's mean power (energy / interval) stands in, a lower
bound of the interval's maximum demand. A meter absent from a frame, a frame
gap, or a reading without power breaks the run; late frames do not count.

State per meter (1 B): ``run`` uint8, consecutive over-capacity intervals (saturates).
Area-level: ``area_last_ts`` int64, the interval end of the last in-order frame.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from services.detector.archive import AreaArchive
from services.detector.detectors.base import Detector, row_findings
from services.detector.findings import Finding, exceed_score, plain
from services.detector.interval import IntervalView
from services.detector.state import Arrays
from services.detector.thresholds import Thresholds

__all__ = ["OverCapacity"]


class OverCapacity(Detector):
    """Counts consecutive intervals of apparent demand above contracted kVA."""

    name: ClassVar[str] = "over_capacity"

    def init_state(self, n_meters: int) -> Arrays:
        return {"run": np.zeros(n_meters, dtype=np.uint8), "area_last_ts": np.zeros(1, dtype=np.int64)}

    def on_frame(self, view: IntervalView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        if view.late:
            return []
        sec, idx, frame = self.name, view.idx, view.frame
        demand = np.where(np.isnan(frame.demand_kw), view.energy_kwh / (frame.interval_minutes / 60.0), frame.demand_kw)
        pf = np.clip(frame.power_factor, th.num(sec, "min_power_factor"), 1.0)
        apparent = demand / np.where(np.isnan(pf), 1.0, pf)
        limit = th.num(sec, "min_ratio") * archive.contracted_kva[idx]
        over = apparent > limit
        run = state["run"]
        continues = state["area_last_ts"][0] == view.ts - frame.interval_s
        previous = run[idx] if continues else np.zeros(len(idx), dtype=np.uint8)
        run[:] = 0
        run[idx] = np.where(over, np.minimum(previous.astype(np.int16) + 1, 255), 0)
        state["area_last_ts"][0] = view.ts
        hit = run[idx] >= th.count(sec, "min_intervals")

        def judge(i: int) -> tuple[float, dict[str, object]]:
            return exceed_score(apparent[i], limit[i]), {
                "demand_kw": plain(demand[i], 3),
                "power_factor": plain(frame.power_factor[i], 3),
                "apparent_kva": plain(apparent[i], 3),
                "contracted_kva": plain(archive.contracted_kva[idx[i]]),
                "consecutive_intervals": int(run[idx[i]]),
                "demand_from_energy": bool(np.isnan(frame.demand_kw[i])),
            }

        return row_findings(th, sec, view, hit, judge)
