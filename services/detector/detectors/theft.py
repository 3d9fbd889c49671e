"""theft_suspected (窃电嫌疑): the evidence of theft combined into one score per meter and day.

Signals, each mapped to c ∈ [0, 1] (``stats.ramp``) and worth at most its
weight ``w`` (``[theft_suspected] w_*``):

- ``sustained_drop``: the drop CUSUM as a fraction of its decision interval,
  or (a shallow drop the CUSUM's allowance absorbs) the z of the mean
  deficit since the drop's onset against the level before it;
- ``area_loss``: the area's loss rose by what this meter stopped reading:
  the log likelihood ratio of "the loss rose by the meter's deficit" against
  "the loss did not move" over the days since the meter's drop began, each
  measured from its own pre-drop reference (``balance/match.py``); a
  genuine fall in use (a household that shrank, a holiday) leaves the loss
  where it was;
- ``interval_loss``: the area's loss moves, interval by interval, with
  this meter's readings (``balance/interval_match.py``): the loss holds a
  share β of what the meter reports, as a bypass or a scaled-down reading
  (h1) leaves; each day's log likelihood ratio of "β is what today's
  deficit implies" against "β = 0" (on the area's own null that day)
  feeds Page's CUSUM, and c ramps on the CUSUM while today's
  β is worth an inspection and the day is at least ``low_day_pct`` below
  the expected level. The day-to-day noise of a large area's loss
  hides a household's few kWh, but not the kettle-by-kettle jumps of its
  readings reappearing in the loss;
- ``power_mismatch`` (功率电量不匹配): the day's energy fell short of what
  the meter's own instantaneous values imply (Σ V·I·pf over the same
  intervals, ``DayView.power_kwh``), against the meter's usual ratio of the
  two: readings falsified on their way to the head end (h1–h4) lower the
  energy, not the current the meter measured; a bypass lowers both (the
  load runs around the meter's current circuit too) and a genuine drop
  neither. Each day's shortfall, in units of the meter's own day-to-day
  spread of the ratio, feeds Page's CUSUM;
- ``tamper``: a cover, terminal-cover or magnetic-field event, remembered
  with a half-life;
- ``phase``: the day's phase currents under load, imbalance ramping to a
  dead phase, or a current/voltage-loss event;
- ``reverse``: reverse energy on a customer without generation;
- ``flattening`` (Jokar h5): the CV of today's hourly kWh collapsed against
  the meter's usual CV;
- ``decorrelation`` (h6 reversed day; h4 random fractions; h3): today's
  rank correlation with the meter's usual hourly profile fell below its
  usual value;
  both shape signals count in proportion to ``max(volume kept, covered)``:
  a changed shape is theft-like when the day's volume is kept (energy moved
  in time) or the area's loss rose at least as much as the meter fell (the
  missing volume can be in the loss: ``LossMatch.coverage`` where its log
  LR favours theft at all, or the trailing ``Attribution.covered``), not on a
  quiet, flat holiday day; and never for a generation customer, whose
  import follows the weather;
- ``roughness`` (h3, each reading scaled by its own random factor): the
  day's robust interval-to-interval roughness (median |Δy| / median y)
  against its usual value, on a day at least ``low_day_pct`` below the
  expected level (like ``interval_loss``): a genuine drop or one
  factor (h1) scales the jumps with the level, h3 about doubles them;
- ``zero_window`` (h2): a run of zero intervals with energy on both sides
  (within the day or across midnight), shorter than a day, where the usual
  profile expects energy (not for generation customers).

What is not theft evidence. ``sustained_drop`` and ``area_loss`` count
only while the meter is below its expected level today, not on a day it
*stopped* recording (a zero run into or out of midnight: meter_stopped and
zero_consumption own it, and the energy a stopped meter misses shows in
the loss exactly as stolen energy would), and not for
``phase_event_hold_days`` after the meter reported its own current or
voltage loss (a metering fault; its own alert sends someone). The shape
signals do not judge a day with reverse energy on a customer without
generation: part of the consumption then runs through the reverse
register, so the forward intervals are not the day's profile.

Volume attacks (bypass, h1, h3, h4, h2's long windows) show in
``sustained_drop`` and ``area_loss`` (the energy is still consumed, so the
area meter sees it), bypass and h1 also in ``interval_loss``, h1–h4 in
``power_mismatch`` where the meter reports instantaneous values, h3 in
``roughness``; shape attacks that keep the volume (h5, h6) show in
``flattening`` and ``decorrelation``, each strong enough alone.

Combination, a noisy-OR (Pearl 1988, §4.3): ``score_day = 1 − Π_s (1 −
w_s·c_s)``, smoothed by its exponentially weighted mean over
``score_days`` (span), so one odd day of a one-day signal cannot open a
theft case but a few consistent ones do; days not judged (incomplete
data) leave it unchanged. ``sustained_drop``, ``area_loss``,
``interval_loss`` and ``power_mismatch`` already integrate over days
(CUSUMs, a test over the days since the onset), so their own noisy-OR
counts at once: the alert's score is the larger of the two (smoothed,
integrated), and a large bypass is a case on its first full day instead
of waiting out a second smoothing. The evidence lists every signal's
contribution ``w_s·c_s``.

A rule of the consumption family. State per meter (27 B): ``theft_score``
float32, ``theft_tamper_age`` and ``theft_phase_age`` uint8 (days since
the last tamper / current- or voltage-loss event, 255 never),
``theft_zero_tail`` uint8 (zero intervals the previous day ended with),
``theft_iloss_cusum`` float32 (the interval-loss CUSUM of log likelihood ratios) and
``theft_rough_mean`` float32 (the usual roughness, NaN until learnt);
``theft_power_ratio``/``theft_power_var`` float32 (the usual energy /
instantaneous energy and its variance, NaN until learnt),
``theft_power_days`` uint8 (days it learnt, saturating) and
``theft_power_cusum`` float32 (Page's CUSUM of the days' z below it).
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np

from services.detector.balance.interval_match import IntervalMatch, interval_match
from services.detector.detectors.consumption import HOURS, DailyRule, DayContext
from services.detector.findings import Finding, plain
from services.detector.state import Arrays
from services.detector.stats.cusum import Cusum
from services.detector.stats.ewm import EWMeanVar
from services.detector.stats.ramp import ramp
from services.detector.thresholds import Thresholds

__all__ = ["SIGNALS", "TheftScore"]

#: The signals, in evidence order; each one's weight is ``[theft_suspected] w_<signal>``.
SIGNALS = (
    "sustained_drop", "area_loss", "interval_loss", "power_mismatch", "tamper", "phase", "reverse",
    "flattening", "decorrelation", "roughness", "zero_window",
)  # fmt: skip
_NEVER = 255
_PHASE_EVENTS = ("current_loss", "voltage_loss")
_INTEGRATED = ("sustained_drop", "area_loss", "interval_loss", "power_mismatch")
_MEASURABLE = 3.0  # a zero window's usual energy per interval, in register resolutions


class TheftScore(DailyRule):
    """Combines the theft signals of each meter's day into a smoothed score."""

    name: ClassVar[str] = "theft_suspected"

    def init_state(self, n_meters: int) -> Arrays:
        return {
            "theft_score": np.zeros(n_meters, np.float32),
            "theft_tamper_age": np.full(n_meters, _NEVER, np.uint8),
            "theft_phase_age": np.full(n_meters, _NEVER, np.uint8),
            "theft_zero_tail": np.zeros(n_meters, np.uint8),
            "theft_iloss_cusum": np.zeros(n_meters, np.float32),
            "theft_rough_mean": np.full(n_meters, np.nan, np.float32),
            "theft_power_ratio": np.full(n_meters, np.nan, np.float32),
            "theft_power_var": np.zeros(n_meters, np.float32),
            "theft_power_days": np.zeros(n_meters, np.uint8),
            "theft_power_cusum": np.zeros(n_meters, np.float32),
        }

    def on_day(self, ctx: DayContext, state: Arrays, th: Thresholds) -> list[Finding]:
        sec = self.name
        age = state["theft_tamper_age"]
        tampered = _event_rows(ctx, th.texts("tamper_event", "codes"))
        age[:] = np.where(tampered, 0, np.minimum(age.astype(np.int16) + 1, _NEVER))
        phase_age = state["theft_phase_age"]
        phase_age[:] = np.where(_event_rows(ctx, _PHASE_EVENTS), 0, np.minimum(phase_age.astype(np.int16) + 1, _NEVER))
        signals, raw = _signals(ctx, state, th)
        parts = {s: th.num(sec, f"w_{s}") * signals[s] for s in SIGNALS}
        score_day = 1.0 - np.prod([1.0 - p for p in parts.values()], axis=0)
        # The volume statistics integrate over days themselves (CUSUM, the loss test since the onset):
        # their combination counts at once, without a second smoothing; the one-day signals are smoothed.
        integrated = 1.0 - np.prod([1.0 - parts[s] for s in _INTEGRATED], axis=0)
        judged = ~np.isnan(ctx.kwh) & ctx.archive.active
        smoothed = state["theft_score"]
        EWMeanVar(smoothed, None, 2.0 / (th.num(sec, "score_days") + 1.0)).update(np.where(judged, score_day, np.nan))
        score = np.maximum(smoothed, np.where(judged, integrated, 0.0))
        hit = judged & (score >= th.num(sec, "min_score"))
        out = []
        for i in np.flatnonzero(hit):
            evidence = {
                "score_day": plain(score_day[i], 3),
                "contributions": {s: plain(parts[s][i], 3) for s in SIGNALS if parts[s][i] > 0},
                "baseline_kwh_day": plain(ctx.base[i] * ctx.area_ratio, 3),
                "observed_kwh_day": plain(ctx.kwh[i], 3),
                **_evidence(i, ctx, signals, raw),
            }
            out.append(Finding.of(th, sec, ctx.archive.meter_ids[i], ctx.day.area_id, ctx.day.end, float(score[i]), evidence))
        return out


def _signals(ctx: DayContext, state: Arrays, th: Thresholds) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each signal's c ∈ [0, 1] per meter, and the raw numbers behind them."""
    sec, day, archive = "theft_suspected", ctx.day, ctx.archive
    c: dict[str, np.ndarray] = {}

    cusum = ctx.cusum
    below = ctx.adj_ratio < 1.0  # still low today: a drained-out CUSUM of a past drop is no evidence
    zero_hours, zero_share, stopped = _zero_window(ctx, state, th)
    # Volume evidence is not judged on a day the meter stopped recording (a zero run of at least
    # zero_window_hours into or out of midnight: meter_stopped / zero_consumption own it), nor for
    # phase_event_hold_days after the meter reported its own current or voltage loss (a metering
    # fault explains the drop, and the current_loss / voltage_loss alert sends someone).
    volume_ok = below & ~stopped & (state["theft_phase_age"] >= th.num(sec, "phase_event_hold_days"))
    volume_ok &= ctx.kwh >= th.num("pipeline", "register_resolution_kwh")
    lm = ctx.loss_match
    # The CUSUM (allowance 1σ) is quick on deep drops; a shallow lasting one (h1 at α 0.8) shows in the
    # mean deficit since the onset instead, whose z grows with the days.
    # ...if it is a drop worth the name: a few percent off a large load is its ordinary variation.
    with np.errstate(invalid="ignore", divide="ignore"):
        deep = lm.deficit_kwh / state["drop_ref_kwh"] >= th.num(sec, "drop_z_min_pct") / 100.0
    drop = np.maximum(
        ramp(cusum / th.num("sustained_drop", "cusum_h"), th.num(sec, "drop_start_fraction"), 1.0),
        np.where(deep, ramp(lm.drop_z, th.num(sec, "drop_z_start"), th.num(sec, "drop_z_full")), 0.0),
    )
    c["sustained_drop"] = np.where(volume_ok, drop, 0.0)
    lr_start = th.num(sec, "loss_lr_start")
    c["area_loss"] = np.where(volume_ok, ramp(lm.log_lr, lr_start, th.num(sec, "loss_lr_full")), 0.0)
    # Reverse energy without generation: part of the load runs through the reverse register, which the
    # interval loss does not see (the balance books it per day), so the forward readings are no test.
    rev = ctx.reverse_kwh
    reversed_ = (rev > th.num("reverse_energy", "min_kwh")) & ~archive.has_generation
    held = state["theft_phase_age"] >= th.num(sec, "phase_event_hold_days")
    usable = ~stopped & held & ~reversed_
    im, iz, implied, iloss = _interval_loss(ctx, state, th, usable)
    # A generation customer's current carries its export too, which its forward energy does not count.
    power = _power_mismatch(ctx, state, th, usable & ~archive.has_generation, volume_ok)
    c["power_mismatch"] = power["c"]
    # The two per-day volume tests that see no volume themselves count only on a clearly low day: an
    # honest meter a few percent under its level, with a noisy test, is not a case.
    low_day = ctx.adj_ratio <= 1.0 - th.num(sec, "low_day_pct") / 100.0
    c["interval_loss"] = np.where(volume_ok & low_day, iloss, 0.0)

    age = state["theft_tamper_age"]
    c["tamper"] = np.where(age < _NEVER, 0.5 ** (age / th.num(sec, "tamper_half_life_days")), 0.0)

    current = day.phase_current_a.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        top = np.nanmax(np.where(np.isnan(current), -np.inf, current), axis=1)
        imbalance = (top - np.nanmin(np.where(np.isnan(current), np.inf, current), axis=1)) / top
    loaded = (archive.phases == 3) & (top >= th.num("current_imbalance", "load_current_pct_ib") / 100.0 * archive.basic_current_a)
    phase_c = np.where(
        loaded,
        ramp(imbalance, th.num("current_imbalance", "max_imbalance_pct") / 100.0, th.num(sec, "phase_imbalance_full_pct") / 100.0),
        0.0,
    )
    c["phase"] = np.where(_event_rows(ctx, _PHASE_EVENTS), 1.0, phase_c)

    c["reverse"] = reversed_.astype(np.float64)

    with np.errstate(invalid="ignore", divide="ignore"):
        cv_ratio = ctx.cv_today / ctx.cv_usual
    # A changed shape is theft-like when the volume is kept (energy moved in time, h5/h6) or the
    # missing volume could be in the area's loss (h3/h4); a quiet, flat holiday week is neither. A
    # generation customer's import follows the clouds: its shape says nothing.
    kept = ramp(ctx.adj_ratio, th.num(sec, "shape_kept_ratio_start"), th.num(sec, "shape_kept_ratio_full"))
    # The loss favours "stolen" over "really used less" since the onset, or (slower, but it needs no
    # onset) the trailing loss rise is at least the meter's deficit rise (``Attribution.covered``).
    covered = np.maximum(np.where(lm.log_lr > 0.0, lm.coverage, 0.0), ctx.attribution.covered)
    # Reverse energy without generation: part of the consumption runs through the reverse register,
    # so the forward intervals are not the day's profile (reverse_energy says the wiring is wrong).
    shape_weight = np.where(archive.has_generation | reversed_, 0.0, np.maximum(kept, covered))
    c["flattening"] = shape_weight * ramp(cv_ratio, th.num(sec, "flat_cv_ratio_start"), th.num(sec, "flat_cv_ratio_full"))
    corr_drop = ctx.corr_usual - ctx.corr_today
    c["decorrelation"] = shape_weight * ramp(corr_drop, th.num(sec, "decorr_drop_start"), th.num(sec, "decorr_drop_full"))

    rough = _roughness(ctx, th)
    rough_ratio = rough / state["theft_rough_mean"].astype(np.float64)
    c["roughness"] = np.where(
        volume_ok & low_day & ~archive.has_generation & ~reversed_ & ~np.isnan(ctx.base),
        ramp(np.nan_to_num(rough_ratio), th.num(sec, "rough_ratio_start"), th.num(sec, "rough_ratio_full")),
        0.0,
    )
    # Learn the usual roughness on ordinary days only (a drop, a rough day or a stopped meter teaches nothing).
    usual_day = (ctx.adj_ratio > 1.0 - th.num("sustained_drop", "drop_pct") / 100.0) & (c["roughness"] == 0.0) & ~stopped
    learn = usual_day & ~np.isnan(rough)
    mean = state["theft_rough_mean"]
    a = 2.0 / (th.num(sec, "rough_days") + 1.0)
    mean[:] = np.where(learn, np.where(np.isnan(mean), rough, mean + a * (rough - mean)), mean)

    c["zero_window"] = (
        (zero_hours >= th.num(sec, "zero_window_hours"))
        & (zero_hours < 24.0)  # a whole day of zeros is zero_consumption or meter_stopped, not a window
        & (zero_share >= th.num(sec, "zero_window_min_share_pct") / 100.0)
        & ~reversed_
        & ~ctx.outage
        & ~archive.has_generation  # solar hours legitimately import nothing
    ).astype(np.float64)

    raw = {
        "cusum": cusum,
        "imbalance": imbalance,
        "reverse_kwh": rev,
        "cv_ratio": cv_ratio,
        "zero_hours": zero_hours,
        "tamper_age": age.astype(np.int64),
        "interval_beta": im.beta,
        "interval_z": iz,
        "interval_implied": implied,
        "interval_cusum": state["theft_iloss_cusum"].astype(np.float64),
        "rough_ratio": rough_ratio,
        **{f"power_{k}": v for k, v in power.items() if k != "c"},
    }
    return c, raw


def _power_mismatch(
    ctx: DayContext, state: Arrays, th: Thresholds, usable: np.ndarray, volume_ok: np.ndarray
) -> dict[str, np.ndarray]:
    """Today's energy / instantaneous energy, its z below the usual ratio, their CUSUM and c ∈ [0, 1].

    Judged where the instantaneous values account for at least
    ``power_min_kwh`` today (an idle meter's day is rounding) and the meter
    is ``usable`` (not stopped, not within a phase-event hold, no reverse
    energy, no generation: its current carries the export too). The usual
    ratio and its spread are a meter's own (its CT and voltage channel
    errors; how its current samples spread around each interval's mean
    power: a 96-point curve samples the current, a household's load cycles
    within minutes): an exponentially weighted mean and variance over
    ``power_days`` ordinary days, judged after ``power_min_days`` of them,
    the spread at least ``power_sigma_floor``. A day teaches it only within
    ``power_learn_z`` of it on either side: a one-sided rule, such as
    learning only while the CUSUM is low, biases it away from the days it
    leaves out and, once the CUSUM is up, freezes the bias in. Each day's
    z, at most ``power_z_cap`` (one odd day never makes a case), feeds
    Page's CUSUM with allowance ``power_cusum_k``; c ramps on it from
    ``power_cusum_start`` to ``power_cusum_full`` on a day the volume
    signals judge (``volume_ok``).
    """
    sec, day = "theft_suspected", ctx.day
    power = day.power_kwh.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(power >= th.num(sec, "power_min_kwh"), day.power_energy_kwh / power, np.nan)
    mean, var, days = state["theft_power_ratio"], state["theft_power_var"], state["theft_power_days"]
    cusum = state["theft_power_cusum"]
    usual = mean.astype(np.float64)
    sigma = np.maximum(np.sqrt(var.astype(np.float64)), th.num(sec, "power_sigma_floor"))
    learnt = days >= th.count(sec, "power_min_days")
    z = np.where(usable & learnt, (usual - ratio) / sigma, np.nan)
    Cusum(cusum, th.num(sec, "power_cusum_k")).update(np.minimum(z, th.num(sec, "power_z_cap")))
    c = np.where(volume_ok, ramp(cusum.astype(np.float64), th.num(sec, "power_cusum_start"), th.num(sec, "power_cusum_full")), 0.0)
    ordinary = ctx.adj_ratio > 1.0 - th.num("sustained_drop", "drop_pct") / 100.0
    near = ~learnt | (np.abs(z) < th.num(sec, "power_learn_z"))
    learn = usable & ordinary & near & ~np.isnan(ratio)
    EWMeanVar(mean, var, 2.0 / (th.num(sec, "power_days") + 1.0)).update(np.where(learn, ratio, np.nan))
    days[:] = np.minimum(days.astype(np.int16) + learn, _NEVER)
    return {"ratio": ratio, "usual": usual, "sigma": sigma, "z": z, "cusum": cusum.astype(np.float64), "c": c}


def _roughness(ctx: DayContext, th: Thresholds) -> np.ndarray:
    """[n] the day's robust interval-to-interval roughness: median |y_t − y_t−1| / median y_t (NaN: not judged).

    Jokar h3 scales each reading by its own random factor: the readings jump
    from interval to interval far more than the household's own load does,
    while a genuine drop (or h1's one factor) scales the jumps with the
    level. Medians, so one spike, a register reset's odd interval or a gap
    does not move it; not judged where the typical interval is within a few
    register resolutions of zero (an idle meter's rounding is not a jump).
    """
    energy = ctx.day.energy.astype(np.float64)
    n, ipd = energy.shape
    if ipd < 2 * HOURS:
        return np.full(n, np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows without any value
        level = np.nanmedian(energy, axis=1)
        jumps = np.nanmedian(np.abs(np.diff(energy, axis=1)), axis=1)
    enough = (~np.isnan(energy)).sum(axis=1) >= ipd // 2
    measurable = level >= _MEASURABLE * th.num("pipeline", "register_resolution_kwh")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(enough & measurable, jumps / level, np.nan)


def _interval_loss(
    ctx: DayContext, state: Arrays, th: Thresholds, usable: np.ndarray
) -> tuple[IntervalMatch, np.ndarray, np.ndarray, np.ndarray]:
    """Today's within-day loss test (``balance/interval_match.py``) folded into Page's CUSUM; c ∈ [0, 1].

    Returns the test, each meter's z calibrated by the area's spread of z
    today (``interval_min_meters``), the β a theft would leave, and c. A meter reading a share α of its
    load leaves ``β = (1 − α) / α`` of its readings in the loss; today's
    level against the expected one (``adj_ratio``) says which α a theft
    would be, so each day contributes the log likelihood ratio of that β
    against β = 0 (:meth:`IntervalMatch.log_lr`, Huber's robust ratio with
    ``interval_lr_huber``), at most ``interval_lr_cap`` (one odd day is
    never a case). (Today's level, not the mean since the drop's onset:
    on the standard run the onset's α gave the same h1 recall and a slower
    bypass.) Page's CUSUM of those
    ratios (Page 1954: the sum since it was last at 0) moves only on days
    the balance is computable and the meter ``usable`` (not stopped, not
    within the hold after its own current/voltage-loss event), so a
    metering fault neither builds nor drains it. A genuine drop has β ≈ 0
    where a large β is expected: its days count against. ``c`` ramps from
    ``interval_lr_start`` to ``interval_lr_full``, and only while today's β
    is at least ``interval_min_beta``: a statistically clear but tiny share
    is a loss model's imprecision on a large meter, not theft.
    """
    sec, b = "theft_suspected", ctx.balance
    n = ctx.n
    if not b.computable or ctx.hourly is None or len(b.interval_loss_kwh) != ctx.day.intervals_per_day:
        nan = np.full(n, np.nan)
        return IntervalMatch(nan, nan.copy(), 0), np.zeros(n), np.zeros(n), np.zeros(n)
    im = interval_match(ctx.day.energy, b.interval_loss_kwh, b.interval_supplied_kwh, th.count(sec, "interval_min_points"))
    cusum = state["theft_iloss_cusum"]
    judged = usable & ~np.isnan(im.beta) & ~np.isnan(ctx.kwh)
    min_meters = th.count(sec, "interval_min_meters")
    with np.errstate(invalid="ignore", divide="ignore"):
        implied = np.where(ctx.adj_ratio > 0, 1.0 / ctx.adj_ratio - 1.0, 0.0)  # (1 − α) / α at α = today's level
    lr = im.log_lr(implied, min_meters, th.num(sec, "interval_lr_huber"))
    step = np.minimum(lr, th.num(sec, "interval_lr_cap"))
    cusum[:] = np.where(judged, np.maximum(cusum + step, 0.0), cusum)
    big = np.nan_to_num(im.beta) >= th.num(sec, "interval_min_beta")
    c = np.where(big, ramp(cusum.astype(np.float64), th.num(sec, "interval_lr_start"), th.num(sec, "interval_lr_full")), 0.0)
    return im, im.calibrated_z(min_meters), implied, c


def _evidence(i: int, ctx: DayContext, c: dict[str, np.ndarray], raw: dict[str, np.ndarray]) -> dict[str, object]:
    """The numbers behind each signal that contributed, for meter row ``i``."""
    out: dict[str, object] = {}
    if c["sustained_drop"][i] > 0:
        out["cusum"] = plain(raw["cusum"][i], 2)
    if c["area_loss"][i] > 0:
        lm = ctx.loss_match
        out["loss_match"] = {
            "days_since_drop": int(ctx.drop_age[i]) + 1,
            "deficit_kwh_day": plain(lm.deficit_kwh[i], 3),
            "loss_rise_kwh_day": plain(lm.loss_rise_kwh[i], 3),
            "coverage": plain(lm.coverage[i], 3),
            "log_likelihood_ratio": plain(lm.log_lr[i], 2),
        }
    if c["interval_loss"][i] > 0:
        out["interval_loss"] = {
            "share_in_loss": plain(raw["interval_beta"][i], 3),
            "share_if_theft": plain(raw["interval_implied"][i], 3),
            "z_today": plain(raw["interval_z"][i], 2),
            "cusum": plain(raw["interval_cusum"][i], 2),
        }
    if c["power_mismatch"][i] > 0:
        out["power_mismatch"] = {
            "energy_kwh": plain(ctx.day.power_energy_kwh[i], 3),
            "instantaneous_kwh": plain(ctx.day.power_kwh[i], 3),
            "ratio": plain(raw["power_ratio"][i], 3),
            "usual_ratio": plain(raw["power_usual"][i], 3),
            "usual_sigma": plain(raw["power_sigma"][i], 3),
            "z_today": plain(raw["power_z"][i], 2),
            "cusum": plain(raw["power_cusum"][i], 2),
        }
    if c["tamper"][i] > 0:
        out["tamper_days_ago"] = int(raw["tamper_age"][i])
    if c["phase"][i] > 0:
        out["phase_imbalance_pct"] = plain(100.0 * raw["imbalance"][i], 1)
    if c["reverse"][i] > 0:
        out["reverse_kwh"] = plain(raw["reverse_kwh"][i], 3)
    if c["flattening"][i] > 0:
        out["cv_ratio"] = plain(raw["cv_ratio"][i], 3)
    if c["decorrelation"][i] > 0:
        out["profile_corr"] = {"today": plain(ctx.corr_today[i], 3), "usual": plain(ctx.corr_usual[i], 3)}
    if c["roughness"][i] > 0:
        out["roughness_ratio"] = plain(raw["rough_ratio"][i], 3)
    if c["zero_window"][i] > 0:
        out["zero_window_hours"] = plain(raw["zero_hours"][i], 2)
    return out


def _event_rows(ctx: DayContext, codes: tuple[str, ...]) -> np.ndarray:
    """bool [n]: meters with one of these events today."""
    out = np.zeros(ctx.n, dtype=bool)
    rows = ctx.archive.indices([e.meter_id for e in ctx.day.events_of(codes)])
    out[rows[rows >= 0]] = True
    return out


def _zero_window(ctx: DayContext, state: Arrays, th: Thresholds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The day's zero window (hours, share of the usual daily energy it covers), and whether the meter stopped.

    A window is a run of zero intervals with energy on both sides: inside
    the day, or across midnight (the zeros the previous day ended with,
    ``theft_zero_tail``, plus the zeros today starts with) when it ends today
    and is shorter than a day. A run still going at the day's end is not
    judged as a window yet (tomorrow says how long it was); it and a run
    into today that lasted a day or more mean the meter *stopped*
    recording, if the usual profile puts at least
    ``zero_window_min_share_pct`` of the day's energy in it (a small
    meter's idle night rounds to zero and is no stop). Run lengths without
    a Python loop: at each interval, the distance to the last non-zero
    interval before it.
    """
    sec = "theft_suspected"
    energy = ctx.day.energy
    n, ipd = energy.shape
    none = np.zeros(n, dtype=bool)
    if ctx.hourly is None or not ipd:
        return np.zeros(n), np.zeros(n), none
    zero = energy < th.num("pipeline", "register_resolution_kwh")  # NaN compares False: a gap is not a zero
    pos = np.arange(ipd)
    last_nonzero = np.maximum.accumulate(np.where(zero, -1, pos), axis=1)
    run = pos - last_nonzero
    ends = zero & np.concatenate([~zero[:, 1:], np.zeros((n, 1), dtype=bool)], axis=1)
    inside = np.where(ends & (last_nonzero >= 0), run, 0)
    longest, end = inside.max(axis=1), inside.argmax(axis=1)
    all_zero = zero.all(axis=1)
    head = np.where(all_zero, ipd, np.argmin(zero, axis=1))
    tail = run[:, -1]
    prev = state["theft_zero_tail"].astype(np.int64)
    cross = np.where(all_zero, 0, prev + head)
    per_interval = np.repeat(np.nan_to_num(ctx.shape), ipd // HOURS, axis=1) / (ipd // HOURS)
    cum = np.concatenate([np.zeros((n, 1)), np.cumsum(per_interval, axis=1)], axis=1)
    rows = np.arange(n)
    total = cum[:, -1]
    usual_inside = cum[rows, end + 1] - cum[rows, end + 1 - longest]
    usual_cross = (total - cum[rows, ipd - np.minimum(prev, ipd)]) + cum[rows, np.minimum(head, ipd)]
    usual_tail = total - cum[rows, ipd - tail]
    use_cross = (cross > longest) & (cross < ipd)
    length = np.where(use_cross, cross, longest)
    res = th.num("pipeline", "register_resolution_kwh")
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, np.where(use_cross, usual_cross, usual_inside) / total, 0.0)
        # Zeros where the usual profile itself is near the register's resolution are an idle meter
        # rounding down, not energy switched off: the window must usually carry clearly measurable energy.
        measurable = np.where(use_cross, usual_cross, usual_inside) / np.maximum(length, 1) >= _MEASURABLE * res
        tail_share = np.where(total > 0, usual_tail / total, 0.0)
        cross_share = np.where(total > 0, usual_cross / total, 0.0)
    share = np.where(measurable, share, 0.0)
    min_len = th.num(sec, "zero_window_hours") * 60.0 / (1440 / ipd)
    min_share = th.num(sec, "zero_window_min_share_pct") / 100.0
    stopped = ((tail >= min_len) & (tail_share >= min_share)) | ((head > 0) & (cross >= ipd) & (cross_share >= min_share))
    state["theft_zero_tail"][:] = np.minimum(np.where(all_zero, prev + ipd, tail), _NEVER).astype(np.uint8)
    return length * (1440 / ipd) / 60.0, share, stopped
