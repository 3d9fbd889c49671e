"""sustained_drop: a level shift down that lasts, the most common signature of theft.

Rule (shared/domain.md): a one-sided CUSUM (Page 1954) of the meter's
standardized daily deficit, ``z = (expected − kWh) / scale``, where
``expected`` is the meter's usual level × its weekday factor × the area's
common change today (the median ratio of observed to expected over the
area's meters: a holiday or a cold snap moves everyone, a thief moves
alone). It fires when the CUSUM exceeds ``cusum_h`` and the meter has been
at least ``drop_pct`` below its expected level (after the area's change)
for at least ``min_days`` days in a row. The CUSUM makes a noisy meter
need a deeper or longer drop than a regular one; the run makes "lasting"
literal. Days not judged (incomplete data, an outage) neither extend nor
break the run.

A rule of the consumption family; the CUSUM itself is part of the
family's history (``deficit_cusum``, shared with theft_suspected). State
per meter (1 B): ``drop_run`` uint8 (consecutive low days, saturating at
255).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from services.detector.detectors.consumption import DailyRule, DayContext
from services.detector.findings import Finding, exceed_score, plain
from services.detector.state import Arrays
from services.detector.thresholds import Thresholds

__all__ = ["SustainedDrop"]


class SustainedDrop(DailyRule):
    """CUSUM of the deficit against the meter's level, net of the area's common change."""

    name: ClassVar[str] = "sustained_drop"

    def init_state(self, n_meters: int) -> Arrays:
        return {"drop_run": np.zeros(n_meters, np.uint8)}

    def on_day(self, ctx: DayContext, state: Arrays, th: Thresholds) -> list[Finding]:
        sec = self.name
        expected = ctx.base * ctx.area_ratio
        judged = ~np.isnan(ctx.kwh) & ~np.isnan(expected) & ~ctx.outage
        cusum = ctx.cusum
        low = judged & (ctx.adj_ratio <= 1.0 - th.num(sec, "drop_pct") / 100.0)
        run = state["drop_run"]
        run[judged] = np.where(low[judged], np.minimum(run[judged].astype(np.int16) + 1, 255), 0)
        h = th.num(sec, "cusum_h")
        hit = low & (run >= th.count(sec, "min_days")) & (cusum >= h)
        out = []
        for i in np.flatnonzero(hit):
            days = int(run[i])
            evidence = {
                "baseline_kwh_day": plain(expected[i], 3),
                "observed_kwh_day": plain(ctx.kwh[i], 3),
                "observed_mean_kwh_day": plain(np.nanmean(ctx.window_kwh[i, -days:]), 3),
                "drop_pct": plain(100.0 * (1.0 - ctx.adj_ratio[i]), 1),
                "days": days,
                "cusum": plain(cusum[i], 2),
                "cusum_h": h,
                "area_median_ratio": plain(ctx.area_ratio, 3),
                "robust_scale_kwh_day": plain(ctx.scale[i], 3),
            }
            out.append(
                Finding.of(th, sec, ctx.archive.meter_ids[i], ctx.day.area_id, ctx.day.end, exceed_score(cusum[i], h), evidence)
            )
        return out
