"""low_power_factor (功率因数异常): a day's power factor below the customer's limit.

Rule (shared/domain.md): the day's energy-weighted mean power factor (the
pipeline's ``DayView.mean_pf``) below ``limit`` for the customer's class
(``[overrides.class.<class>.low_power_factor]``: 0.85 commercial and
small industrial, 0.80 residential and agricultural by default), or below
``large_industrial_limit`` (0.90) for industrial customers of at least
``large_industrial_min_kva``. Days under ``min_kwh_day`` are not judged:
an idle meter's power factor says nothing about the customer's plant.
Stateless.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from services.detector.archive import CUSTOMER_CLASSES, AreaArchive
from services.detector.day import DayView
from services.detector.detectors.base import Detector
from services.detector.findings import Finding, exceed_score, plain
from services.detector.state import Arrays
from services.detector.thresholds import Thresholds

__all__ = ["LowPowerFactor"]

_INDUSTRIAL = CUSTOMER_CLASSES.index("industrial")


class LowPowerFactor(Detector):
    """Daily power factor against the per-class limit."""

    name: ClassVar[str] = "low_power_factor"

    def on_day(self, day: DayView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        sec = self.name
        large = (archive.customer_class == _INDUSTRIAL) & (archive.contracted_kva >= th.num(sec, "large_industrial_min_kva"))
        limit = np.where(large, th.num(sec, "large_industrial_limit"), th.per_class(sec, "limit", archive.customer_class))
        pf = day.mean_pf.astype(np.float64)
        hit = (pf < limit) & (day.daily_kwh >= th.num(sec, "min_kwh_day"))
        return [
            Finding.of(
                th,
                sec,
                archive.meter_ids[i],
                day.area_id,
                day.end,
                exceed_score(1.0 - pf[i], 1.0 - limit[i]),
                {
                    "power_factor": plain(pf[i], 3),
                    "limit": plain(limit[i], 3),
                    "customer_class": CUSTOMER_CLASSES[archive.customer_class[i]] if archive.customer_class[i] >= 0 else None,
                    "contracted_kva": plain(archive.contracted_kva[i], 1),
                    "daily_kwh": plain(day.daily_kwh[i], 3),
                },
            )
            for i in np.flatnonzero(hit)
        ]
