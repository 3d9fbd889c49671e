"""usage_on_inactive: energy flows on an account the archive says is inactive or closed (销户/停电).

Rule (shared/domain.md): any interval energy above ``min_kwh`` while the
archive status is not ``active``. Energy is the completed interval energy
(reported, else from registers). Stateless.
"""

from __future__ import annotations

from typing import ClassVar

from services.detector.archive import AreaArchive
from services.detector.detectors.base import Detector, row_findings
from services.detector.findings import Finding, exceed_score, plain
from services.detector.interval import IntervalView
from services.detector.state import Arrays
from services.detector.thresholds import Thresholds

__all__ = ["UsageOnInactive"]


class UsageOnInactive(Detector):
    """Flags each interval of energy on a non-active account."""

    name: ClassVar[str] = "usage_on_inactive"

    def on_frame(self, view: IntervalView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        min_kwh = th.num(self.name, "min_kwh")
        energy = view.energy_kwh
        hit = ~archive.active[view.idx] & (energy > min_kwh)

        def judge(i: int) -> tuple[float, dict[str, object]]:
            return exceed_score(energy[i], min_kwh), {
                "status": archive.status[view.idx[i]],
                "energy_kwh": plain(energy[i]),
                "energy_from_registers": bool(view.derived[i]),
                "min_kwh": min_kwh,
            }

        return row_findings(th, self.name, view, hit, judge)
