"""register_decrease (示度下降/倒走): the forward register reads lower than the previous reading.

Rule (shared/domain.md): forward register lower than the previous reading.
A drop of at least half a register step (``[pipeline] register_resolution_kwh``)
counts, so float noise does not. The pipeline leaves no previous register after
a ``meter_replaced`` event or a new ``installed_at`` in the archive (the new
meter starts low), and none for a reading older than the previous one (an
out-of-order delivery is not a decrease), so those never fire. Stateless.
"""

from __future__ import annotations

from typing import ClassVar

from services.detector.archive import AreaArchive
from services.detector.detectors.base import Detector, row_findings
from services.detector.eventtime import format_ts
from services.detector.findings import Finding, plain
from services.detector.interval import IntervalView
from services.detector.state import Arrays
from services.detector.thresholds import Thresholds

__all__ = ["RegisterDecrease"]


class RegisterDecrease(Detector):
    """Fires on every reading whose forward register went down."""

    name: ClassVar[str] = "register_decrease"

    def on_frame(self, view: IntervalView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        step = th.num("pipeline", "register_resolution_kwh")
        register = view.frame.register_fwd_kwh
        drop = view.prev_register_fwd_kwh - register
        hit = drop >= 0.5 * step
        if not hit.any():
            return []
        mult = archive.multiplier[view.idx]

        def judge(i: int) -> tuple[float, dict[str, object]]:
            return 1.0, {
                "previous_register_kwh": plain(view.prev_register_fwd_kwh[i]),
                "previous_at": format_ts(int(view.prev_register_ts[i])),
                "register_kwh": plain(register[i]),
                "decrease_kwh": plain(drop[i]),
                "decrease_primary_kwh": plain(drop[i] * mult[i]),
                "multiplier": plain(mult[i]),
            }

        return row_findings(th, self.name, view, hit, judge)
