"""theft_suspected (窃电嫌疑): the evidence of theft combined into one score per meter and day.

Signals, each mapped to c ∈ [0, 1] (``stats.ramp``) and worth at most its
weight ``w`` (``[theft_suspected] w_*``):

- ``sustained_drop``: the drop CUSUM as a fraction of its decision interval;
- ``area_loss``: the area's loss rose when this meter fell: the attribution
  score of the meter's deficit against the area's loss energy over the
  trailing days (``balance/attribution.py``), counted while the meter is
  below its expected level;
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
  missing volume can be in the loss; ``Attribution.covered``), not on a
  quiet, flat holiday day; and never for a generation customer, whose
  import follows the weather;
- ``zero_window`` (h2): a run of zero intervals, shorter than the day,
  where the usual profile expects energy (not for generation customers).

Volume attacks (bypass, h1, h3, h4, h2's long windows) show in
``sustained_drop`` and ``area_loss`` (the energy is still consumed, so the
area meter sees it); shape attacks that keep the volume (h5, h6) show in
``flattening`` and ``decorrelation``, each strong enough alone.

Combination, a noisy-OR (Pearl 1988, §4.3): ``score_day = 1 − Π_s (1 −
w_s·c_s)``; the alert's score is its exponentially weighted mean over
``score_days`` (span), so one odd day cannot open a theft case but a few
consistent ones do; days not judged (incomplete data) leave it unchanged.
The evidence lists every signal's contribution ``w_s·c_s``.

A rule of the consumption family. State per meter (5 B): ``theft_score``
float32, ``theft_tamper_age`` uint8 (days since the last tamper event, 255
never).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from services.detector.detectors.consumption import HOURS, DailyRule, DayContext
from services.detector.findings import Finding, plain
from services.detector.state import Arrays
from services.detector.stats.ewm import EWMeanVar
from services.detector.stats.ramp import ramp
from services.detector.thresholds import Thresholds

__all__ = ["SIGNALS", "TheftScore"]

#: The signals, in evidence order; each one's weight is ``[theft_suspected] w_<signal>``.
SIGNALS = ("sustained_drop", "area_loss", "tamper", "phase", "reverse", "flattening", "decorrelation", "zero_window")
_NEVER = 255
_PHASE_EVENTS = ("current_loss", "voltage_loss")


class TheftScore(DailyRule):
    """Combines the theft signals of each meter's day into a smoothed score."""

    name: ClassVar[str] = "theft_suspected"

    def init_state(self, n_meters: int) -> Arrays:
        return {
            "theft_score": np.zeros(n_meters, np.float32),
            "theft_tamper_age": np.full(n_meters, _NEVER, np.uint8),
        }

    def on_day(self, ctx: DayContext, state: Arrays, th: Thresholds) -> list[Finding]:
        sec = self.name
        age = state["theft_tamper_age"]
        tampered = _event_rows(ctx, th.texts("tamper_event", "codes"))
        age[:] = np.where(tampered, 0, np.minimum(age.astype(np.int16) + 1, _NEVER))
        signals, raw = _signals(ctx, state, th)
        parts = {s: th.num(sec, f"w_{s}") * signals[s] for s in SIGNALS}
        score_day = 1.0 - np.prod([1.0 - p for p in parts.values()], axis=0)
        judged = ~np.isnan(ctx.kwh) & ctx.archive.active
        score = state["theft_score"]
        EWMeanVar(score, None, 2.0 / (th.num(sec, "score_days") + 1.0)).update(np.where(judged, score_day, np.nan))
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
    c["sustained_drop"] = ramp(cusum / th.num("sustained_drop", "cusum_h"), th.num(sec, "drop_start_fraction"), 1.0)

    att = ctx.attribution
    below = ctx.adj_ratio < 1.0
    c["area_loss"] = np.where(below, ramp(att.score, th.num(sec, "loss_score_start"), th.num(sec, "loss_score_full")), 0.0)

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

    rev = ctx.reverse_kwh
    c["reverse"] = ((rev > th.num("reverse_energy", "min_kwh")) & ~archive.has_generation).astype(np.float64)

    with np.errstate(invalid="ignore", divide="ignore"):
        cv_ratio = ctx.cv_today / ctx.cv_usual
    # A changed shape is theft-like when the volume is kept (energy moved in time, h5/h6) or the
    # missing volume could be in the area's loss (h3/h4); a quiet, flat holiday week is neither. A
    # generation customer's import follows the clouds: its shape says nothing.
    kept = ramp(ctx.adj_ratio, th.num(sec, "shape_kept_ratio_start"), th.num(sec, "shape_kept_ratio_full"))
    shape_weight = np.where(archive.has_generation, 0.0, np.maximum(kept, att.covered))
    c["flattening"] = shape_weight * ramp(cv_ratio, th.num(sec, "flat_cv_ratio_start"), th.num(sec, "flat_cv_ratio_full"))
    corr_drop = ctx.corr_usual - ctx.corr_today
    c["decorrelation"] = shape_weight * ramp(corr_drop, th.num(sec, "decorr_drop_start"), th.num(sec, "decorr_drop_full"))

    zero_hours, zero_share = _zero_window(ctx, th)
    c["zero_window"] = (
        (zero_hours >= th.num(sec, "zero_window_hours"))
        & (zero_hours < 24.0)  # a whole day of zeros is zero_consumption or meter_stopped, not a window
        & (zero_share >= th.num(sec, "zero_window_min_share_pct") / 100.0)
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
    }
    return c, raw


def _evidence(i: int, ctx: DayContext, c: dict[str, np.ndarray], raw: dict[str, np.ndarray]) -> dict[str, object]:
    """The numbers behind each signal that contributed, for meter row ``i``."""
    out: dict[str, object] = {}
    if c["sustained_drop"][i] > 0:
        out["cusum"] = plain(raw["cusum"][i], 2)
    if c["area_loss"][i] > 0:
        att = ctx.attribution
        out["loss_attribution"] = {
            "score": plain(att.score[i], 3),
            "r": plain(att.r[i], 3),
            "deficit_rise_kwh_day": plain(att.rise_kwh[i], 3),
            "loss_rise_kwh_day": plain(att.target_rise_kwh, 3),
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
    if c["zero_window"][i] > 0:
        out["zero_window_hours"] = plain(raw["zero_hours"][i], 2)
    return out


def _event_rows(ctx: DayContext, codes: tuple[str, ...]) -> np.ndarray:
    """bool [n]: meters with one of these events today."""
    out = np.zeros(ctx.n, dtype=bool)
    rows = ctx.archive.indices([e.meter_id for e in ctx.day.events_of(codes)])
    out[rows[rows >= 0]] = True
    return out


def _zero_window(ctx: DayContext, th: Thresholds) -> tuple[np.ndarray, np.ndarray]:
    """Longest run of zero intervals today (hours) and the share of usual daily energy it covers.

    Run lengths without a Python loop: at each interval, the distance to
    the last non-zero interval before it.
    """
    energy = ctx.day.energy
    n, ipd = energy.shape
    if ctx.hourly is None or not ipd:
        return np.zeros(n), np.zeros(n)
    zero = energy < th.num("pipeline", "register_resolution_kwh")  # NaN compares False: a gap is not a zero
    pos = np.arange(ipd)
    last_nonzero = np.maximum.accumulate(np.where(zero, -1, pos), axis=1)
    run = pos - last_nonzero
    longest = run.max(axis=1)
    end = run.argmax(axis=1)
    per_interval = np.repeat(np.nan_to_num(ctx.shape), ipd // HOURS, axis=1) / (ipd // HOURS)
    cum = np.concatenate([np.zeros((n, 1)), np.cumsum(per_interval, axis=1)], axis=1)
    rows = np.arange(n)
    usual = cum[rows, end + 1] - cum[rows, end + 1 - longest]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(cum[:, -1] > 0, usual / cum[:, -1], 0.0)
    return longest * (1440 / ipd) / 60.0, share
