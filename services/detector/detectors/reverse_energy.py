"""reverse_energy (反向电量异常): reverse active energy grows on a customer without generation.

Rule (shared/domain.md): the reverse register grows on a meter whose archive
says ``has_generation: false``. Growth is counted from the first reverse
register seen (or the one after a replacement) so a slow creep adds up; a
reading fires when its register grew since the previous one and the total
growth × multiplier exceeds ``min_kwh``. Customers with generation (PV) export
legitimately and are never judged.

State per meter (8 B): ``base`` float64, the reverse register growth is counted from.
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

__all__ = ["ReverseEnergy"]


class ReverseEnergy(Detector):
    """Accumulates reverse-register growth per meter without generation."""

    name: ClassVar[str] = "reverse_energy"

    def init_state(self, n_meters: int) -> Arrays:
        return {"base": np.full(n_meters, np.nan)}

    def on_frame(self, view: IntervalView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        idx = view.idx
        rev = view.frame.register_rev_kwh
        prev = view.prev_register_rev_kwh
        base = state["base"][idx]
        restart = ~np.isnan(rev) & (view.prev_register_ts < view.ts) & (np.isnan(base) | np.isnan(prev) | (rev < base))
        state["base"][idx[restart]] = rev[restart]
        base = state["base"][idx]
        mult = archive.multiplier[idx]
        step = th.num("pipeline", "register_resolution_kwh")
        min_kwh = th.num(self.name, "min_kwh")
        growth = (rev - base) * mult
        hit = ~archive.has_generation[idx] & (rev - prev >= 0.5 * step) & (growth > min_kwh)

        def judge(i: int) -> tuple[float, dict[str, object]]:
            return exceed_score(growth[i], min_kwh), {
                "reverse_register_kwh": plain(rev[i]),
                "reverse_growth_kwh": plain(growth[i]),
                "interval_reverse_kwh": plain(view.register_rev_delta_kwh[i]),
                "has_generation": False,
                "min_kwh": min_kwh,
            }

        return row_findings(th, self.name, view, hit, judge)
