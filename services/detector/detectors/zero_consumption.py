"""zero_consumption (零电量): an active account that normally consumes reads nothing for days.

Rule (shared/domain.md): the meter's complete days read 0 kWh (below the
register resolution, ``[pipeline] register_resolution_kwh``) for at least
``min_days`` days in a row, on an account the archive calls active, whose
usual level is at least ``min_history_kwh_day``, unless an outage explains
it (a ``power_outage`` event of the meter or of the area meter that day:
such a day neither extends nor breaks the run). A meter that does not
report at all is ``missing_data``, not this: only days with readings count.

A rule of the consumption family. State per meter (1 B): ``zero_run``
uint8 (consecutive zero days, saturating at 255).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from services.detector.detectors.consumption import DailyRule, DayContext
from services.detector.findings import Finding, exceed_score, plain
from services.detector.state import Arrays
from services.detector.thresholds import Thresholds

__all__ = ["ZeroConsumption"]


class ZeroConsumption(DailyRule):
    """Counts consecutive zero days of active meters with a consuming history."""

    name: ClassVar[str] = "zero_consumption"

    def init_state(self, n_meters: int) -> Arrays:
        return {"zero_run": np.zeros(n_meters, np.uint8)}

    def on_day(self, ctx: DayContext, state: Arrays, th: Thresholds) -> list[Finding]:
        sec = self.name
        judged = ~np.isnan(ctx.kwh) & ~ctx.outage
        zero = judged & (ctx.kwh < th.num("pipeline", "register_resolution_kwh"))
        run = state["zero_run"]
        run[judged] = np.where(zero[judged], np.minimum(run[judged].astype(np.int16) + 1, 255), 0)
        min_days = th.count(sec, "min_days")
        hit = zero & ctx.archive.active & (run >= min_days) & (ctx.base >= th.num(sec, "min_history_kwh_day"))
        return [
            Finding.of(
                th,
                sec,
                ctx.archive.meter_ids[i],
                ctx.day.area_id,
                ctx.day.end,
                exceed_score(run[i], min_days),
                {
                    "zero_days": int(run[i]),
                    "observed_kwh_day": plain(ctx.kwh[i], 3),
                    "baseline_kwh_day": plain(ctx.base[i], 3),
                    "account_status": ctx.archive.status[i],
                    "outage_events": False,
                },
            )
            for i in np.flatnonzero(hit)
        ]
