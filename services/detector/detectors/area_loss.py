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

Trailing 24 h, judged every hour. A loss that starts during a day shows
in that day's rate only partly, so the daily judgement raises a thief who
starts in the afternoon only when the next day closes (a day and a half
later). So the same limit is also applied, on the hour, to the loss of the
trailing 24 hours (``on_frame``): each interval's supplied energy (the area
meter plus the generation customers' export), the energy its meters
reported (plus reverse energy without generation, as the daily balance
books it) and the *usual* energy of the meters that reported and of all
active meters (each meter's usual hourly profile, else its usual level),
so the meters that did not report are filled at their usual rate without
remembering who they were. A window is judged only when every interval in
it is there, the area meter reported it and at least ``[area_balance]
min_coverage_pct`` of the active meters did: a window the stream has not
delivered whole is never judged (late corrections complete a window that
is then judged at a later hour). A 24-hour window is as long as a day, so
its noise is a day's; the daily judgement stays (with the attribution),
and after a day judged high the hourly one pauses until a day is not: the
alert's evidence is the latest finding's, and the day's carries the
attribution an hourly finding would replace every hour.

A rule of the consumption family (it needs the meters' deficits and the
area's series side by side); its state is area-level only: the loss
series the family keeps and a ring of the last day's interval sums
(nothing per meter).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from services.detector.balance.attribution import Attribution
from services.detector.balance.attribution import evidence as attribution_evidence
from services.detector.archive import AreaArchive
from services.detector.detectors.consumption import HOURS, DailyRule, DayContext, loss_limits, weekday_type
from services.detector.detectors.wrong_area import negative_loss_suspects
from services.detector.eventtime import DAY_S
from services.detector.findings import Finding, exceed_score, plain
from services.detector.interval import IntervalView
from services.detector.state import Arrays
from services.detector.thresholds import Thresholds

__all__ = ["AreaLoss"]

_TREND_DAYS = 14  # trailing daily rates shown in the evidence
_RING = 96  # interval slots of the trailing-24 h ring: a day of the finest (15-minute) data
_IDS = 1 << 16  # slots are told apart by their interval number modulo this (two years of 15-minute intervals)
_NO_SLOT = _IDS - 1  # an empty slot (an interval number that recurs only after two years)
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday


class AreaLoss(DailyRule):
    """Classifies the area's day and explains a high or negative loss."""

    name: ClassVar[str] = "area_loss"

    def init_state(self, n_meters: int) -> Arrays:
        # 20 B per slot, area-level: the budget of an area's own arrays is a few KiB.
        return {
            "area_hl_id": np.full((1, _RING), _NO_SLOT, np.uint16),  # interval number (ts // interval, mod 2¹⁶) of each slot
            "area_hl_supplied": np.full((1, _RING), np.nan, np.float32),  # the area meter's energy
            "area_hl_export": np.zeros((1, _RING), np.float32),  # generation customers' export
            "area_hl_consumed": np.zeros((1, _RING), np.float32),  # reported energy (+ reverse without generation)
            "area_hl_fill": np.zeros((1, _RING), np.float32),  # usual energy of the active meters that have not reported
            "area_hl_count": np.zeros((1, _RING), np.uint16),  # active meters that reported
            "area_hl_day_high": np.zeros(1, np.uint8),  # 1 while the last judged day was high (see on_frame)
        }

    def on_frame(self, view: IntervalView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        """Add the frame to its interval's slot; on the hour, judge the trailing 24 hours."""
        interval_s = view.frame.interval_s
        ipd = DAY_S // interval_s if interval_s else 0
        if archive.area_meter_id is None or not ipd or ipd > _RING or DAY_S % interval_s:
            return []
        ts = view.ts
        slot, ident = (ts // interval_s) % _RING, (ts // interval_s) % _IDS
        usual = _usual_rate(ts - interval_s, ipd, state, th)  # [n], a few microseconds for an area's meters
        r = {k: state[f"area_hl_{k}"][0] for k in ("id", "supplied", "export", "consumed", "fill", "count")}
        if r["id"][slot] != ident:
            r["id"][slot] = ident
            r["supplied"][slot] = np.nan
            r["export"][slot] = r["consumed"][slot] = 0.0
            r["count"][slot] = 0
            r["fill"][slot] = float(usual[archive.active].sum())
        energy, rows = view.energy_kwh, view.idx
        has = ~np.isnan(energy)
        rev = np.nan_to_num(view.register_rev_delta_kwh)
        gen = archive.has_generation[rows]
        r["consumed"][slot] += float(energy[has].sum()) + float(rev[(rev > 0) & ~gen].sum())
        r["export"][slot] += float(rev[(rev > 0) & gen].sum())
        counted = has & archive.active[rows]
        r["fill"][slot] -= float(usual[rows[counted]].sum())
        r["count"][slot] = min(int(r["count"][slot]) + int(counted.sum()), _IDS - 1)
        if np.isnan(r["supplied"][slot]) and not np.isnan(view.area_energy_kwh):
            r["supplied"][slot] = view.area_energy_kwh
        if view.late or ts % 3600 or state["area_hl_day_high"][0]:
            # After a high day the daily judgement speaks for the area (with the attribution, which an
            # hourly finding would otherwise replace as the alert's latest evidence every hour).
            return []
        return _trailing_day(ts, interval_s, ipd, archive, r, th)

    def on_day(self, ctx: DayContext, state: Arrays, th: Thresholds) -> list[Finding]:
        archive, b = ctx.archive, ctx.balance
        if archive.area_meter_id is None or not ctx.day.complete:
            return []
        limits = loss_limits(archive, th)
        state["area_hl_day_high"][0] = b.status == "high"
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


def _usual_rate(start: int, ipd: int, state: Arrays, th: Thresholds) -> np.ndarray:
    """[n] each meter's usual energy in the interval starting at ``start``: its usual hourly profile, else its level, else 0."""
    day_no = start // DAY_S
    weekend = weekday_type((day_no + _EPOCH_WEEKDAY) % 7, th)
    hour = (start % DAY_S) // 3600
    per_hour = max(ipd // HOURS, 1)
    shape = state["shape_kwh"][:, weekend, hour].astype(np.float64) / per_hour if ipd >= HOURS else np.full(len(state["level_kwh"]), np.nan)
    level = state["level_kwh"].astype(np.float64) / ipd
    return np.nan_to_num(np.where(np.isnan(shape), level, shape))


def _trailing_day(ts: int, interval_s: int, ipd: int, archive: AreaArchive, r: dict[str, np.ndarray], th: Thresholds) -> list[Finding]:
    """An area_high_loss finding at ``ts`` if the trailing 24 hours, all delivered, lost more than the limit."""
    ends = ts - interval_s * np.arange(ipd)
    slots = (ends // interval_s) % _RING
    n_active = int(archive.active.sum())
    limits = loss_limits(archive, th)
    if not n_active or (r["id"][slots] != (ends // interval_s) % _IDS).any() or np.isnan(r["supplied"][slots]).any():
        return []
    if (r["count"][slots] < limits.min_coverage * n_active).any():
        return []
    supplied = float(r["supplied"][slots].astype(np.float64).sum() + r["export"][slots].astype(np.float64).sum())
    imputed = float(np.maximum(r["fill"][slots], 0.0).astype(np.float64).sum())
    consumed = float(r["consumed"][slots].astype(np.float64).sum()) + imputed
    if supplied <= 0.0:
        return []
    rate = (supplied - consumed) / supplied
    if not rate > limits.high:
        return []
    evidence = {
        "window": "trailing 24 h",
        "limit_pct": plain(100.0 * limits.high, 2),
        "supplied_kwh": plain(supplied, 3),
        "consumed_kwh": plain(consumed, 3),
        "imputed_kwh": plain(imputed, 3),
        "min_coverage_pct": plain(100.0 * float(r["count"][slots].min()) / n_active, 2),
        "loss_rate_pct": plain(100.0 * rate, 2),
        "loss_kwh": plain(supplied - consumed, 3),
    }
    return [Finding.of(th, "area_high_loss", archive.area_id, archive.area_id, ts, exceed_score(rate, limits.high), evidence, subject_kind="area")]


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
