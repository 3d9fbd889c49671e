"""consumption_swing (电量突变): a day far from the meter's own normal, up or down.

Rule (shared/domain.md): today's kWh deviates at least ``deviation_pct``
from the median of the same weekday over the past ``baseline_weeks``
weeks, with a robust z of at least ``robust_z``, and an absolute change
of at least ``min_abs_kwh_day``. All three: the percentage alone fires on
small meters, z alone on very regular ones, the absolute change alone on
large ones. The baseline moves with the area's common change today (the
median over its meters of observed / expected: a cold day raises every
household, and is not this meter's swing). The z is a prediction z,
``(kWh − baseline) / (σ · sqrt(1 + π/(2k)))`` with σ the robust scale of
the meter's day-to-day noise (Shamos over same-weekday pairs of the last
4 weeks) and k the same-weekday values in the median: a median of two
weeks is itself uncertain, so the bar rises while history is short. A
down swing on a day an outage explains is not one. The evidence compares
the hours of the day with the meter's usual hourly profile, so a person
sees *when* the change happened.

A rule of the consumption family (``detectors/consumption.py``); it keeps
no state of its own (0 B per meter).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from services.detector.detectors.consumption import DailyRule, DayContext
from services.detector.findings import Finding, exceed_score, plain
from services.detector.state import Arrays
from services.detector.thresholds import Thresholds

__all__ = ["ConsumptionSwing"]

_HOURS_SHOWN = 3  # hours listed in the evidence, largest change first


class ConsumptionSwing(DailyRule):
    """Robust same-weekday comparison of each meter's day."""

    name: ClassVar[str] = "consumption_swing"

    def on_day(self, ctx: DayContext, state: Arrays, th: Thresholds) -> list[Finding]:
        sec = self.name
        expected = ctx.weekday_kwh * ctx.area_ratio
        delta = ctx.kwh - expected
        with np.errstate(invalid="ignore", divide="ignore"):
            deviation = np.abs(delta) / expected
        z_min = th.num(sec, "robust_z")
        hit = (
            (deviation >= th.num(sec, "deviation_pct") / 100.0)
            & (np.abs(ctx.z) >= z_min)
            & (np.abs(delta) >= th.num(sec, "min_abs_kwh_day"))
            & ~((delta < 0) & ctx.outage)
        )
        out = []
        for i in np.flatnonzero(hit):
            evidence = {
                "direction": "up" if delta[i] > 0 else "down",
                "observed_kwh_day": plain(ctx.kwh[i], 3),
                "baseline_kwh_day": plain(expected[i], 3),
                "baseline": f"median of the same weekday over {int(ctx.weekday_n[i])} past weeks × the area's change today",
                "weekday_median_kwh_day": plain(ctx.weekday_kwh[i], 3),
                "area_change": plain(ctx.area_ratio, 3),
                "deviation_pct": plain(100.0 * deviation[i], 1),
                "robust_z": plain(ctx.z[i], 2),
                "robust_scale_kwh_day": plain(ctx.scale[i], 3),
                "hours": _hours(ctx, i),
            }
            score = exceed_score(abs(ctx.z[i]), z_min)
            out.append(Finding.of(th, sec, ctx.archive.meter_ids[i], ctx.day.area_id, ctx.day.end, score, evidence))
        return out


def _hours(ctx: DayContext, i: int) -> list[dict[str, object]]:
    """The hours that changed most against the usual hourly profile (observed vs usual kWh)."""
    if ctx.hourly is None or np.isnan(ctx.shape[i]).all():
        return []
    change = ctx.hourly[i] - ctx.shape[i]
    order = np.argsort(-np.nan_to_num(np.abs(change), nan=-1.0))[:_HOURS_SHOWN]
    return [
        {"hour": int(h), "observed_kwh": plain(ctx.hourly[i, h], 3), "usual_kwh": plain(ctx.shape[i, h], 3)}
        for h in order
        if not np.isnan(change[h])
    ]
