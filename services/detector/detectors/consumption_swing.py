"""consumption_swing (电量突变): a day far from the meter's own normal, up or down.

Rule (shared/domain.md): today's kWh deviates at least ``deviation_pct``
from the median of the same weekday over the past ``baseline_weeks``
weeks, with a robust z of at least ``robust_z``, and an absolute change
of at least ``min_abs_kwh_day``. All three: the percentage alone fires on
small meters, z alone on very regular ones, the absolute change alone on
large ones. The baseline moves with the area's common change today (the
median over its meters of observed / expected: a cold day raises every
household, and is not this meter's swing). The z is a prediction z on
the log scale, ``(ln kWh − ln baseline) / (σ · sqrt(1 + π/(2k)))`` with σ
the robust scale of the meter's day-to-day noise in ``ln`` (Shamos over
same-weekday pairs of the last 4 weeks; the log is started at
``[consumption] min_scale_kwh`` so an idle day stays finite) and k the
same-weekday values in the median: a median of two weeks is itself
uncertain, so the bar rises while history is short. Why the log: daily
consumption varies multiplicatively (a busy day is +30 %, a quiet one
−25 %, equally likely), so its distribution is right-skewed; a linear z
of 4 is then a one-in-a-thousand busy day for a household (the false up
swings of the first standard run) and almost never a quiet one, while a
z of 4 in ``ln`` is equally rare both ways and a halved day (ln 0.5)
stands out as far as a doubled one. A
down swing on a day an outage explains is not one. The evidence compares
the hours of the day with the meter's usual hourly profile, so a person
sees *when* the change happened.

Whose σ. A meter's own σ comes from four weeks at most (two at the
start): its Shamos estimate scatters by about a quarter between
households that are equally noisy (some 9 degrees of freedom, fewer with
two weeks of history), and a z of 4 against a σ that came out a third too
small by chance is an ordinary busy day (up "swings" of +40–80 % at
z 4.0–4.9 were most of the false swings of the standard run). A day
cannot be judged less noisy than the meters like it: σ is floored at
``peer_scale_floor`` × the median σ of the area's meters of the same
customer class (at least ``peer_min_meters`` of them with a σ; without
enough peers the meter's own σ stands; ``peer_scale_floor`` is a little
below 1 because half the peers really are quieter than their median). The median over dozens of
households is stable, the floor never makes a meter *more* sensitive, and
a household really quieter than its neighbours is judged as one of them
(its swings must be as large as theirs). The peers are grouped by class and
by generation: a PV customer's net import varies with the weather (the
whole class stands in where the area has too few PV roofs: their import
is at least as variable as their use).

Whose common change. A customer with generation meters its use net of
its own PV, which moves with the sunshine for every roof of the area at
once; its baseline moves with the change of the area's generation
customers today rather than the whole area's (see :func:`_common_change`;
a third of the false swings of the standard run were PV customers on a
cloudy day).

Two days. A swing that lasts two days is judged on their sum too: the
mean ln ratio of yesterday and today against σ_2 = √(σ_y² + σ_t²) / 2
(the two days' noise independent), with the same deviation and absolute
conditions on the two days' totals and its own, higher bar
``two_day_z`` (a second look at every meter-day). A 2.5 × swing of a
household whose σ (ln, the prediction's share included) is 0.235 is
z ≈ 3.9 on each day, short of 4 both times; on the two days together it
is 5.5. An outage day is not carried into
the next (a down swing it explains is not half of one).

A rule of the consumption family (``detectors/consumption.py``). State
per meter (12 B), for the two-day window: ``swing_prev_day`` int32 the
epoch day last judged (not an outage), ``swing_prev_expected_kwh`` and
``swing_prev_sigma`` float32 its baseline and σ (ln); its kWh is the
family's daily ring (``ctx.window_kwh``).
"""

from __future__ import annotations

from dataclasses import dataclass
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

    def init_state(self, n_meters: int) -> Arrays:
        return {
            "swing_prev_day": np.full(n_meters, -1, np.int32),
            "swing_prev_expected_kwh": np.full(n_meters, np.nan, np.float32),
            "swing_prev_sigma": np.full(n_meters, np.nan, np.float32),
        }

    def on_day(self, ctx: DayContext, state: Arrays, th: Thresholds) -> list[Finding]:
        sec = self.name
        change, generation = _common_change(ctx, th)
        expected = ctx.weekday_kwh * change
        delta = ctx.kwh - expected
        sigma, peer = _swing_sigma(ctx, th)
        c0 = th.num("consumption", "min_scale_kwh")
        with np.errstate(invalid="ignore", divide="ignore"):
            deviation = np.abs(delta) / expected
            # ctx.z's ln ratio, against the (generation customers') common change and the floored σ
            z = (np.log(ctx.kwh + c0) - np.log(expected + c0)) / sigma
        z_min = th.num(sec, "robust_z")
        day_hit = (
            (deviation >= th.num(sec, "deviation_pct") / 100.0)
            & (np.abs(z) >= z_min)
            & (np.abs(delta) >= th.num(sec, "min_abs_kwh_day"))
            & ~((delta < 0) & ctx.outage)
        )
        part = _part_of_day(ctx, expected, sigma, th)
        two = _two_days(ctx, expected, sigma, state, th)
        hit = day_hit | (part.hit & ~((part.delta < 0) & ctx.outage)) | two.hit
        out = []
        for i in np.flatnonzero(hit):
            window: dict[str, object] = {}
            if day_hit[i]:
                z_i = z[i]
            elif two.hit[i]:  # neither day alone, both together
                delta[i], deviation[i], z_i = two.delta[i], two.deviation[i], two.z[i]
                window = {
                    "hours_judged": "yesterday and today",
                    "window_observed_kwh": plain(two.observed[i], 3),
                    "window_usual_kwh": plain(two.usual[i], 3),
                }
            else:  # the change covers only part of the day: judged on those hours
                delta[i], deviation[i], z_i = part.delta[i], part.deviation[i], part.z[i]
                window = {
                    "hours_judged": part.label(i),
                    "window_observed_kwh": plain(part.observed[i], 3),
                    "window_usual_kwh": plain(part.usual[i], 3),
                }
            evidence = {
                "direction": "up" if delta[i] > 0 else "down",
                "observed_kwh_day": plain(ctx.kwh[i], 3),
                "baseline_kwh_day": plain(expected[i], 3),
                "baseline": f"median of the same weekday over {int(ctx.weekday_n[i])} past weeks × the "
                + ("change of the area's generation customers today" if generation[i] else "area's change today"),
                "weekday_median_kwh_day": plain(ctx.weekday_kwh[i], 3),
                "area_change": plain(change[i], 3),
                "deviation_pct": plain(100.0 * deviation[i], 1),
                "robust_z": plain(z_i, 2),
                "robust_scale_kwh_day": plain(ctx.scale[i], 3),
                "z_sigma_ln": plain(sigma[i], 4),
                "peer_scale_ln": plain(peer[i], 4),
                **window,
                "hours": _hours(ctx, i),
            }
            score = exceed_score(abs(z_i), z_min)
            out.append(Finding.of(th, sec, ctx.archive.meter_ids[i], ctx.day.area_id, ctx.day.end, score, evidence))
        return out


@dataclass(frozen=True, slots=True, eq=False)
class _Part:
    """The best part-of-day window per meter (the first or last ``hours[i]`` hours) and its numbers."""

    hit: np.ndarray
    hours: np.ndarray  # int: window length, negative for the first hours of the day
    observed: np.ndarray
    usual: np.ndarray
    delta: np.ndarray  # as a daily rate (kWh/day)
    deviation: np.ndarray
    z: np.ndarray

    def label(self, i: int) -> str:
        h = int(self.hours[i])
        return f"first {-h} h" if h < 0 else f"last {h} h"


@dataclass(frozen=True, slots=True, eq=False)
class _TwoDays:
    """Yesterday and today judged together, per meter (totals over the two days; delta as a daily rate)."""

    hit: np.ndarray
    observed: np.ndarray
    usual: np.ndarray
    delta: np.ndarray
    deviation: np.ndarray
    z: np.ndarray


def _two_days(ctx: DayContext, expected: np.ndarray, sigma: np.ndarray, state: Arrays, th: Thresholds) -> _TwoDays:
    """The rule on yesterday and today together (see the module's "Two days"); remembers today for tomorrow."""
    sec = "consumption_swing"
    c0 = th.num("consumption", "min_scale_kwh")
    consecutive = state["swing_prev_day"] == ctx.day_no - 1
    observed = np.where(consecutive, ctx.window_kwh[:, -2], np.nan) + ctx.kwh  # the ring's yesterday
    usual = np.where(consecutive, state["swing_prev_expected_kwh"], np.nan) + expected
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma2 = np.sqrt(np.where(consecutive, state["swing_prev_sigma"], np.nan) ** 2 + sigma**2) / 2.0
        z = (np.log(observed / 2.0 + c0) - np.log(usual / 2.0 + c0)) / sigma2
        deviation = np.abs(observed - usual) / usual
    delta = (observed - usual) / 2.0
    hit = (
        (deviation >= th.num(sec, "deviation_pct") / 100.0)
        & (np.abs(z) >= th.num(sec, "two_day_z"))
        & (np.abs(delta) >= th.num(sec, "min_abs_kwh_day"))
        & ~((delta < 0) & ctx.outage)
    )
    judged = np.isfinite(ctx.kwh) & np.isfinite(expected) & np.isfinite(sigma) & ~ctx.outage
    state["swing_prev_day"][judged] = ctx.day_no
    state["swing_prev_expected_kwh"][judged] = expected[judged]
    state["swing_prev_sigma"][judged] = sigma[judged]
    return _TwoDays(hit=hit, observed=observed, usual=usual, delta=delta, deviation=deviation, z=z)


def _common_change(ctx: DayContext, th: Thresholds) -> tuple[np.ndarray, np.ndarray]:
    """Today's common change per meter (observed / expected shared by its kind), and where it is the generation customers'.

    The area's change (``ctx.area_ratio``) for most meters. A customer with
    generation (archive ``has_generation``) meters what it imports, its
    use net of its own PV: a cloudy day after sunny weeks doubles it, for
    every PV roof of the area at once, and the area's median (mostly
    customers without PV) does not see it. Their common change is the
    median of observed / expected over the area's active generation
    customers, with at least ``generation_min_meters`` of them judged
    (else the area's). Same measure as the area's (``ctx.kwh / ctx.base``).
    """
    change = np.full(ctx.n, ctx.area_ratio)
    gen = ctx.archive.has_generation & ctx.archive.active
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = ctx.kwh / ctx.base
    ok = gen & np.isfinite(ratio) & (ctx.base > 0)
    used = np.zeros(ctx.n, dtype=bool)
    if ok.sum() >= th.count("consumption_swing", "generation_min_meters"):
        common = float(np.median(ratio[ok]))
        if common > 0:
            change[ctx.archive.has_generation] = common
            used = ctx.archive.has_generation.copy()
    return change, used


def _swing_sigma(ctx: DayContext, th: Thresholds) -> tuple[np.ndarray, np.ndarray]:
    """The σ of the swing z (ln, prediction) per meter, floored by the meter's peers; and the peers' median σ.

    The meter's own robust scale in ``ln`` is ``ctx.z_sigma / √(1 + π/(2k))``.
    Its peers are the area's active meters of the same customer class and
    the same generation (with or without; the whole class when fewer) with a scale (the meter itself included); with at least
    ``peer_min_meters`` of them the scale is at least
    ``peer_scale_floor`` × their median, before the same prediction
    factor. NaN where the meter has no scale of its own (not judged).
    """
    sec = "consumption_swing"
    with np.errstate(invalid="ignore", divide="ignore"):
        inflate = np.sqrt(1.0 + 0.5 * np.pi / ctx.weekday_n)
        own = ctx.z_sigma / inflate
    peer = np.full(ctx.n, np.nan)
    has = np.isfinite(own) & ctx.archive.active
    need = th.count(sec, "peer_min_meters")
    # The class first (PV or not), then class and generation where enough: a PV customer's import is at least
    # as variable as its class's use, so its class is the fallback when the area has few PV roofs.
    for groups in (ctx.archive.customer_class.astype(np.int64), ctx.archive.customer_class * 2 + ctx.archive.has_generation):
        for c in np.unique(groups):
            members = groups == c
            pool = own[members & has]
            if len(pool) >= need:
                peer[members] = float(np.median(pool))
    floor = th.num(sec, "peer_scale_floor") * peer
    return np.where(np.isnan(own), np.nan, np.fmax(own, floor)) * inflate, peer


def _part_of_day(ctx: DayContext, expected: np.ndarray, sigma: np.ndarray, th: Thresholds) -> _Part:
    """The catalogue's "intervals checked against the same time-of-day baseline": a swing that began or ended today.

    A swing starting mid-afternoon halves the evening but only a third of
    the day, so the daily total misses it. The same three conditions are
    therefore applied to the day's last (a swing that began) and first (one
    that ended) ``part_hours`` hours, against the meter's usual hourly
    profile scaled to today's expected kWh: deviation ≥ ``deviation_pct``,
    the change as a daily rate ≥ ``min_abs_kwh_day``, and a log-scale z ≥
    ``robust_z`` whose σ is the day's (peer-floored) σ × √(24 / hours) (fewer hours,
    more noise; as if the hours were independent, which overstates it).
    Windows with a missing hour are not judged, nor are customers with
    generation: what they import hour by hour is their use net of their
    roof's output, so its shape follows the sunshine (an overcast day fills
    the daylight hours the usual profile has near zero) and the usual
    profile is no baseline for part of their day; their whole day is
    judged as everyone's.
    """
    sec = "consumption_swing"
    n = ctx.n
    empty = np.zeros(n)
    if ctx.hourly is None:
        return _Part(np.zeros(n, dtype=bool), np.zeros(n, np.int64), empty, empty, empty, empty, empty)
    c0 = th.num("consumption", "min_scale_kwh")
    with np.errstate(invalid="ignore", divide="ignore"):
        usual_day = ctx.shape * (expected / np.nansum(ctx.shape, axis=1))[:, None]
    best = np.zeros(n)
    out = {k: np.zeros(n) for k in ("observed", "usual", "delta", "deviation", "z")}
    hours = np.zeros(n, np.int64)
    hit = np.zeros(n, dtype=bool)
    for h in th.texts(sec, "part_hours"):
        k = int(h)
        for signed, cols in ((k, slice(24 - k, 24)), (-k, slice(0, k))):
            obs = ctx.hourly[:, cols].sum(axis=1)  # NaN if an hour is missing
            usual = usual_day[:, cols].sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                delta = (obs - usual) * 24.0 / k
                deviation = np.abs(obs - usual) / usual
                z = (np.log(obs * 24.0 / k + c0) - np.log(usual * 24.0 / k + c0)) / (sigma * np.sqrt(24.0 / k))
            ok = (
                ~ctx.archive.has_generation
                & (deviation >= th.num(sec, "deviation_pct") / 100.0)
                & (np.abs(z) >= th.num(sec, "robust_z"))
                & (np.abs(delta) >= th.num(sec, "min_abs_kwh_day"))
            )
            better = ok & (np.abs(np.nan_to_num(z)) > best)
            best = np.where(better, np.abs(z), best)
            hours = np.where(better, signed, hours)
            hit |= ok
            for key, v in (("observed", obs), ("usual", usual), ("delta", delta), ("deviation", deviation), ("z", z)):
                out[key] = np.where(better, v, out[key])
    return _Part(hit=hit, hours=hours, **out)


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
