"""area_high_loss (高损), area_negative_loss (负损), area_loss_uncomputable (不可算): the area's daily balance judged.

Rule (shared/domain.md): each closed day the area's balance
(``balance/loss.py``) is classified: not computable below
``[area_balance] min_coverage_pct`` of active meters reported (or without
the area meter), high above the area's limit (archive ``loss_limit_pct``,
else ``[area_high_loss] limit_pct``), negative below
``[area_negative_loss] limit_pct``, compliant otherwise. Every alert shows
the balance (supplied, consumed, imputed, coverage), the hourly loss and
the trailing loss series. A high-loss alert carries its attribution: the
meters whose deficit tracks the loss (``balance/attribution.py``), or
"no metered customer explains it: walk the line". A negative-loss alert
names the meters whose consumption the area does not supply
(``detectors/wrong_area.py``). An area without an area meter in its
archive has no balance and raises nothing, and a day the stream did not
cover whole (``DayView.complete``: the first day, a flushed day) is not
judged.

A rule of the consumption family (it needs the meters' deficits and the
area's series side by side); its only state is the area-level loss
series the family keeps (nothing per meter).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from services.detector.balance.attribution import Attribution
from services.detector.balance.attribution import evidence as attribution_evidence
from services.detector.detectors.consumption import DailyRule, DayContext, loss_limits
from services.detector.detectors.wrong_area import negative_loss_suspects
from services.detector.findings import Finding, exceed_score, plain
from services.detector.state import Arrays
from services.detector.thresholds import Thresholds

__all__ = ["AreaLoss"]

_TREND_DAYS = 14  # trailing daily rates shown in the evidence


class AreaLoss(DailyRule):
    """Classifies the area's day and explains a high or negative loss."""

    name: ClassVar[str] = "area_loss"

    def on_day(self, ctx: DayContext, state: Arrays, th: Thresholds) -> list[Finding]:
        archive, b = ctx.archive, ctx.balance
        if archive.area_meter_id is None or not ctx.day.complete:
            return []
        limits = loss_limits(archive, th)
        shown: dict[str, Any] = {
            "supplied_kwh": plain(b.supplied_kwh, 3),
            "consumed_kwh": plain(b.consumed_kwh, 3),
            "imputed_kwh": plain(b.imputed_kwh, 3),
            "coverage_pct": plain(100.0 * b.coverage, 2),
            "reported_meters": b.reported_meters,
            "active_meters": b.active_meters,
        }
        if b.status == "uncomputable":
            type_ = "area_loss_uncomputable"
            score = exceed_score(limits.min_coverage, b.coverage) if b.reason == "coverage" else 1.0
            evidence = {
                "reason": b.reason,
                "min_coverage_pct": th.num("area_balance", "min_coverage_pct"),
                "area_meter_intervals": b.window_intervals,
                "intervals_per_day": ctx.day.intervals_per_day,
                **shown,
            }
        elif b.status in ("high", "negative"):
            shown |= {
                "loss_rate_pct": plain(100.0 * b.loss_rate, 2),
                "loss_kwh": plain(b.loss_kwh, 3),
                "hourly_loss_pct": [plain(100.0 * r, 1) for r in b.hourly_rate],
                "trailing_loss_pct": [plain(100.0 * r, 2) for r in ctx.loss_rates[-_TREND_DAYS:]],
            }
            if b.status == "high":
                type_, score = "area_high_loss", exceed_score(b.loss_rate, limits.high)
                evidence = {"limit_pct": plain(100.0 * limits.high, 2), **shown, "attribution": _attribution(ctx, limits.high, th)}
            else:
                type_, score = "area_negative_loss", exceed_score(-b.loss_rate, -limits.negative)
                evidence = {"limit_pct": plain(100.0 * limits.negative, 2), **shown, "wrong_area_suspects": _suspects(ctx, th)}
        else:
            return []
        return [Finding.of(th, type_, ctx.day.area_id, ctx.day.area_id, ctx.day.end, score, evidence, subject_kind="area")]


def _attribution(ctx: DayContext, limit: float, th: Thresholds) -> dict[str, Any]:
    """Candidates: meters whose drop, against their own level before it began, the loss rise confirms and matches in size.

    ``balance/match.py``: each meter is compared with the days before its
    own onset, so a theft that has lasted for weeks still ranks its thief
    (the trailing window alone would hold only theft days). The trailing
    correlation's loss rise is kept as the area's ``loss_rise_kwh_day``.
    """
    sec = "area_high_loss"
    high = ctx.loss_rates > limit  # NaN days are not high: an uncomputable day breaks the run
    run = len(high) - int(np.flatnonzero(~high)[-1]) - 1 if (~high).any() else len(high)
    lm = ctx.loss_match
    score = lm.score(th.num("theft_suspected", "loss_lr_start"), th.num("theft_suspected", "loss_lr_full"))
    ranked = Attribution(
        r=lm.coverage, rise_kwh=lm.deficit_kwh, target_rise_kwh=ctx.attribution.target_rise_kwh, score=score, covered=lm.coverage
    )
    out = attribution_evidence(
        ranked,
        ctx.archive.meter_ids,
        th.num(sec, "attribution_min_score"),
        th.count(sec, "attribution_top"),
        settled=run >= th.count(sec, "attribution_min_high_days"),
    )
    for c in out["candidates"]:
        i = ctx.archive.meter_ids.index(c.pop("meter_id"))
        c.pop("r", None)
        c.update(
            meter_id=ctx.archive.meter_ids[i],
            days_since_drop=int(ctx.drop_age[i]) + 1,
            loss_rise_since_drop_kwh_day=plain(lm.loss_rise_kwh[i], 3),
            log_likelihood_ratio=plain(lm.log_lr[i], 2),
        )
    return out | {"high_loss_days": run}


def _suspects(ctx: DayContext, th: Thresholds) -> list[dict[str, Any]]:
    s = negative_loss_suspects(ctx, th)
    order = np.flatnonzero(s.hit)[np.argsort(-s.r[s.hit], kind="stable")]
    return [
        {
            "meter_id": ctx.archive.meter_ids[i],
            "r": plain(s.r[i], 3),
            "observed_kwh_day": plain(ctx.kwh[i], 3),
            "loss_pct_without_meter": plain(100.0 * s.without[i], 2),
        }
        for i in order[: th.count("area_high_loss", "attribution_top")]
    ]
