"""The consumption family: each meter's history, kept once, judged by the daily rules.

Why a family. consumption_swing, sustained_drop, zero_consumption, the
area balance with its attribution, wrong_area (negative loss) and
theft_suspected all judge a meter's day against the same history: its last
28 daily totals, its usual level and its usual hourly profile. The
Detector protocol gives every detector its own state group, so six
detectors would keep six copies of that history in a budget of 1 KiB per
meter. This one Detector (``name = "consumption"``) keeps the history
once, computes the day's baselines once (numpy over the whole area) into a
:class:`DayContext` and hands it to its rules in order. Each rule lives in
its own module (``detectors/<type>.py``), implements :class:`DailyRule`
and owns a few arrays of the same state group (keys are disjoint, checked
at construction).

What a day's kWh is. Forward energy, plus the reverse energy of a
customer without generation (reversed wiring consumes all the same; the
reverse_energy detector says the wiring is wrong, the consumption rules
must not call it a drop). A generation customer's reverse energy is
export: the balance counts it as supply (``balance/loss.py``).

When a day counts. A meter's day is judged and learnt only when at least
``[consumption] min_day_intervals_pct`` of its intervals carry
energy (a few missing ones are filled at the day's own rate). A gap day, a
late upload that missed its day, a meter swap's blank interval therefore
never reach a baseline or a rule: data faults are not consumption.

Order within a day: balance of the area → context (baselines from the
history *before* today) → rules → learn today (history ring, level, usual
profile). Learning skips days a rule would call abnormal, so a drop or a
theft does not teach the baseline that detects it.

State per meter of the history (the rules add theirs, see their modules):
``hist_kwh`` float32[28] daily kWh ring (112 B), ``level_kwh`` float32
usual daily kWh, frozen while the meter is abnormal (4 B), ``deficit_cusum``
float32 the one-sided CUSUM of the standardized deficit against the
usual level (read by sustained_drop and theft_suspected, 4 B),
``level_frozen_days`` uint8 (days the level has been held for a building
CUSUM, 1 B), ``day_rev_kwh`` float32 (the open day's reverse energy, 4 B),
and per day
type (working day / ``weekend_days``: households live differently at
weekends) ``shape_kwh`` float16[2, 24] usual hourly kWh (96 B; float16
keeps 3 significant digits, plenty for a profile whose EWM steps are
percents), ``cv_mean`` float32[2] usual intra-day coefficient of variation
(8 B), ``corr_mean`` float32[2] usual correlation of a day with the usual
profile (8 B); the drop in progress (``balance/match.py``): ``drop_ref_kwh``
float32 the level when it began, ``drop_loss_base`` float32 the area's usual
loss rate then, ``drop_sigma_kwh`` float16 its noise then, ``drop_age``
uint8 days since its onset (255 none), 11 B: 248 B. Area-level: the ring's last day, the open day's
generation export per interval (``area_export_kwh``, 4·96 B) and the loss
series (``balance/series.py``, 8·28 B + 16 B).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from services.detector.archive import AreaArchive
from services.detector.balance.attribution import Attribution, explain
from services.detector.balance.loss import DayBalance, LossLimits, day_balance
from services.detector.balance.match import LossMatch, match_drops
from services.detector.balance.series import LossSeries
from services.detector.day import DayView
from services.detector.detectors.base import Detector
from services.detector.eventtime import DAY_S
from services.detector.findings import Finding
from services.detector.interval import IntervalView
from services.detector.state import Arrays
from services.detector.stats.correlation import spearman
from services.detector.stats.cusum import Cusum
from services.detector.stats.ewm import EWMeanVar
from services.detector.stats.ring import DayRing
from services.detector.stats.robust import RobustZ
from services.detector.stats.shamos import SHAMOS_TO_SIGMA, ShamosScale
from services.detector.thresholds import Thresholds

__all__ = ["HISTORY_DAYS", "HOURS", "ConsumptionFamily", "DailyRule", "DayContext", "loss_limits"]

#: Days of daily totals kept per meter: four weeks, so four past values of each weekday.
#: Storage, not a threshold: changing it changes the state layout.
HISTORY_DAYS = 28
HOURS = 24
_WEEK = 7
_DAY_TYPES = 2  # working day, weekend
_MAX_INTERVALS = 96  # the finest interval data of the contract: 15 minutes
_SEC = "consumption"
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_OUTAGE = "power_outage"
_NO_DROP = 255


class DailyRule(Protocol):
    """One alert type judged on the family's :class:`DayContext`; subclass it for the no-op defaults."""

    name: ClassVar[str]

    def init_state(self, n_meters: int) -> Arrays:
        """The rule's own arrays (keys unique within the family group)."""
        return {}

    def on_frame(self, view: IntervalView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding] | None:
        """Accumulate what the day view lacks (most rules need nothing); findings judged on the frame, if any."""
        return None

    def on_day(self, ctx: DayContext, state: Arrays, th: Thresholds) -> list[Finding]:
        """Findings of one closed day."""
        return []


@dataclass(frozen=True, slots=True, eq=False)
class DayContext:
    """One closed day of an area with every meter's baselines, computed once for all rules.

    Per-meter arrays are aligned with the archive. ``kwh`` is NaN where the
    meter's day is not complete enough to judge. Windows of
    ``HISTORY_DAYS`` columns run oldest first and end with today.
    """

    day: DayView
    archive: AreaArchive
    day_no: int
    kwh: np.ndarray  # float64 [n] today's kWh (few missing intervals filled; + reverse without generation), NaN: not judged
    hourly: np.ndarray | None  # float64 [n, 24] today's hourly kWh, NaN hours with a missing interval; None below hourly data
    weekday_kwh: np.ndarray  # [n] median of the same weekday over the past weeks
    weekday_n: np.ndarray  # [n] how many past same-weekday values it used
    scale: np.ndarray  # [n] robust σ of the meter's day-to-day kWh (Shamos over same-weekday pairs, floored)
    z: np.ndarray  # [n] robust prediction z of ln(today) against ln(weekday median × area change)
    z_sigma: np.ndarray  # [n] the σ of that prediction, in ln (robust scale × √(1 + π/(2k)))
    weekday_factor: np.ndarray  # [n] today's weekday median / the 28 days' median (1 without history)
    base: np.ndarray  # [n] today's expected kWh: usual level × weekday factor
    area_ratio: float  # median of kwh / base over the area (its common change; 1 when unknown)
    adj_ratio: np.ndarray  # [n] kwh / (base · area_ratio): today's level not explained by the area
    cusum: np.ndarray  # [n] one-sided CUSUM of the standardized deficit, today included
    window_kwh: np.ndarray  # [n, K] daily kWh, days today−K+1 … today
    deficits: np.ndarray  # [n, K] expected − observed kWh, same days
    balance: DayBalance
    loss_rates: np.ndarray  # [K] area loss rate, same days (NaN: not computable)
    loss_excess_kwh: np.ndarray  # [K] area loss energy above its usual rate, same days
    attribution: Attribution  # deficits vs excess loss energy (trailing correlation; wrong_area reads its r)
    drop_age: np.ndarray  # int [n] days since the onset of the meter's drop in progress (−1: none)
    loss_match: LossMatch  # each drop since its onset against the area's loss rise since then
    outage: np.ndarray  # bool [n]: an outage explains a low day
    reverse_kwh: np.ndarray  # [n] today's reverse energy (export with generation, else counted in ``kwh``)
    day_type: int  # 0 working day, 1 weekend (``[consumption] weekend_days``)
    shape: np.ndarray  # [n, 24] usual hourly kWh of today's day type (before today)
    cv_today: np.ndarray  # [n] intra-day CV of today's hourly kWh
    cv_usual: np.ndarray  # [n] its usual value for the day type
    corr_today: np.ndarray  # [n] correlation of today's hours with the usual profile
    corr_usual: np.ndarray  # [n] its usual value for the day type

    @property
    def n(self) -> int:
        return len(self.kwh)



def weekday_type(weekday: int, th: Thresholds) -> int:
    """0 for a working day, 1 for a weekend day (``[consumption] weekend_days``) of weekday Monday = 0 … Sunday = 6."""
    return int(_WEEKDAYS[weekday] in th.texts(_SEC, "weekend_days"))

def loss_limits(archive: AreaArchive, th: Thresholds) -> LossLimits:
    """The area's loss classification limits.

    The high-loss limit is the archive's ``loss_limit_pct`` when it gives
    one, else ``[area_high_loss] limit_pct``.
    """
    high = archive.loss_limit_pct if math.isfinite(archive.loss_limit_pct) else th.num("area_high_loss", "limit_pct")
    return LossLimits(
        high=high / 100.0,
        negative=th.num("area_negative_loss", "limit_pct") / 100.0,
        min_coverage=th.num("area_balance", "min_coverage_pct") / 100.0,
        min_meter_share=th.num("area_balance", "min_meter_intervals_pct") / 100.0,
    )


class ConsumptionFamily(Detector):
    """Keeps the per-meter history and runs the daily consumption rules on it."""

    name: ClassVar[str] = "consumption"
    __slots__ = ("rules",)

    def __init__(self, rules: Sequence[DailyRule]) -> None:
        self.rules = tuple(rules)
        keys = list(_history_arrays(0))
        for rule in self.rules:
            keys += list(rule.init_state(0))
        dup = {k for k in keys if keys.count(k) > 1}
        if dup:
            raise ValueError(f"state keys used twice in the consumption family: {sorted(dup)}")

    def init_state(self, n_meters: int) -> Arrays:
        arrays = _history_arrays(n_meters)
        for rule in self.rules:
            arrays.update(rule.init_state(n_meters))
        return arrays

    def on_frame(self, view: IntervalView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        """Sum the open day's reverse energy: per meter, and the generation customers' export per interval.

        Register deltas never span a meter replacement (the pipeline), and
        a late frame's delta is NaN (its register is not newer), so nothing
        is counted twice.
        """
        rev = view.register_rev_delta_kwh
        grew = rev > 0
        state["day_rev_kwh"][view.idx[grew]] += rev[grew].astype(np.float32)
        export = state["area_export_kwh"][0]
        slot = ((view.ts - 1) % DAY_S) // view.frame.interval_s
        if not view.late and slot < len(export):
            export[slot] += float(rev[grew & archive.has_generation[view.idx]].sum())
        findings: list[Finding] = []
        for rule in self.rules:
            findings += rule.on_frame(view, archive, state, th) or []
        return findings

    def on_day(self, day: DayView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        ctx = _context(day, archive, state, th)
        findings = [f for rule in self.rules for f in rule.on_day(ctx, state, th)]
        _learn(ctx, state, th)
        state["day_rev_kwh"][:] = 0.0
        state["area_export_kwh"][:] = 0.0
        return findings


# -- history ---------------------------------------------------------------------


def _history_arrays(n: int) -> Arrays:
    return {
        "hist_kwh": np.full((n, HISTORY_DAYS), np.nan, np.float32),
        "area_hist_day": np.full(1, -1, np.int64),
        "level_kwh": np.full(n, np.nan, np.float32),
        "deficit_cusum": np.zeros(n, np.float32),
        "level_frozen_days": np.zeros(n, np.uint8),
        "day_rev_kwh": np.zeros(n, np.float32),
        "area_export_kwh": np.zeros((1, _MAX_INTERVALS), np.float32),
        "shape_kwh": np.full((n, _DAY_TYPES, HOURS), np.nan, np.float16),
        "cv_mean": np.full((n, _DAY_TYPES), np.nan, np.float32),
        "corr_mean": np.full((n, _DAY_TYPES), np.nan, np.float32),
        "drop_ref_kwh": np.full(n, np.nan, np.float32),
        "drop_loss_base": np.full(n, np.nan, np.float32),
        "drop_age": np.full(n, _NO_DROP, np.uint8),
        "drop_sigma_kwh": np.full(n, np.nan, np.float16),
        **LossSeries.init_state(HISTORY_DAYS),
    }


def _alpha(th: Thresholds, key: str) -> float:
    """EWM weight of a memory span in days: 2 / (N + 1)."""
    return 2.0 / (th.num(_SEC, key) + 1.0)


def _learn(ctx: DayContext, state: Arrays, th: Thresholds) -> None:
    """Fold today into the history; a day the rules find unusual teaches neither level nor profile.

    Unusual volume: a swing (|z| ≥ consumption_swing.robust_z), a low day
    (sustained_drop.drop_pct), or a deficit CUSUM already past
    ``learn_max_cusum_fraction`` of its decision interval (a subtle drop
    would otherwise be learnt before it is proven). The last one holds the
    level for at most ``level_freeze_max_days``: a meter whose use really
    settled lower is then learnt, instead of locking its CUSUM high for
    good. Unusual shape: a day the theft score calls flattened or
    decorrelated (its ``*_start`` values).
    """
    ring = DayRing(state["hist_kwh"], state["area_hist_day"])
    ring.update(ctx.kwh, ctx.day_no)
    level = state["level_kwh"]
    drop = th.num("sustained_drop", "drop_pct") / 100.0
    usual = (np.abs(ctx.z) < th.num("consumption_swing", "robust_z")) | np.isnan(ctx.z)
    building = ctx.cusum >= th.num(_SEC, "learn_max_cusum_fraction") * th.num("sustained_drop", "cusum_h")
    frozen = state["level_frozen_days"]
    frozen[:] = np.where(building, np.minimum(frozen.astype(np.int16) + 1, 255), 0)
    # A drop the area's loss confirms (the energy is still consumed, only not metered) is not a new normal.
    confirmed = ctx.loss_match.log_lr >= th.num("theft_suspected", "loss_lr_start")
    held = building & ((frozen <= th.count(_SEC, "level_freeze_max_days")) | confirmed)
    normal = ~np.isnan(ctx.kwh) & usual & ~(ctx.adj_ratio <= 1.0 - drop)
    shape_normal = normal & ~building
    normal &= ~held
    seeded = ~np.isnan(level)
    # Seed the level from the ring's median once enough history exists.
    days = np.count_nonzero(~np.isnan(ring.values), axis=1)
    seed = ~seeded & (days >= th.count(_SEC, "min_history_days"))
    if seed.any():
        level[seed] = np.nanmedian(ring.values[seed], axis=1)
    deseasoned = ctx.kwh / ctx.weekday_factor  # the level is a weekday-free daily kWh
    EWMeanVar(level, None, _alpha(th, "level_days")).update(np.where(normal & seeded, deseasoned, np.nan))
    if ctx.hourly is None:
        return
    theft = "theft_suspected"
    with np.errstate(invalid="ignore", divide="ignore"):
        flat = ctx.cv_today / ctx.cv_usual <= th.num(theft, "flat_cv_ratio_start")
    decorrelated = ctx.corr_usual - ctx.corr_today >= th.num(theft, "decorr_drop_start")
    shape_ok = shape_normal & ~np.isnan(ctx.hourly).any(axis=1) & ~flat & ~decorrelated
    a, t = _alpha(th, "profile_days"), ctx.day_type
    shape = EWMeanVar(state["shape_kwh"][:, t].astype(np.float64), None, a)
    state["shape_kwh"][:, t] = shape.update(np.where(shape_ok[:, None], ctx.hourly, np.nan)).get()[0]
    for key, today in (("cv_mean", ctx.cv_today), ("corr_mean", ctx.corr_today)):
        EWMeanVar(state[key][:, t], None, a).update(np.where(shape_ok, today, np.nan))


# -- the day's context -----------------------------------------------------------


def _context(day: DayView, archive: AreaArchive, state: Arrays, th: Thresholds) -> DayContext:
    ipd = day.intervals_per_day
    day_no = day.day_start // DAY_S
    need = math.ceil(th.num(_SEC, "min_day_intervals_pct") / 100.0 * ipd)
    reverse = state["day_rev_kwh"].astype(np.float64)
    backwards = np.where(archive.has_generation, 0.0, reverse)  # reversed wiring: consumed, metered backwards
    past = DayRing(state["hist_kwh"], state["area_hist_day"]).days(range(day_no - HISTORY_DAYS, day_no))
    past = past.astype(np.float64)  # column j: day today−28+j, so column 0 is today's weekday
    # Day type of each of the 28 past columns (column 0 is today's weekday, four weeks ago).
    past_types = np.isin([_WEEKDAYS[(day.weekday + j) % _WEEK] for j in range(HISTORY_DAYS)], th.texts(_SEC, "weekend_days"))
    weekday_kwh, weekday_n, scale, log_scale, factor = _weekday_baselines(past, th, past_types)
    level = state["level_kwh"].astype(np.float64)
    base = level * factor[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        kwh = np.where(day.energy_intervals >= need, day.daily_kwh * ipd / day.energy_intervals + backwards, np.nan)
        ratio = kwh / base
    outage = _outage(day, archive)
    common = archive.active & np.isfinite(ratio) & (base > 0)
    area_ratio = float(np.median(ratio[common])) if common.sum() >= th.count(_SEC, "min_area_meters") else 1.0
    if not area_ratio > 0:
        area_ratio = 1.0
    adj_ratio = ratio / area_ratio
    # Robust z of today against its weekday median moved by the area's common change (weather moves
    # everyone), as a prediction: the median of k past values is itself uncertain by ≈ π/2 · σ²/k.
    # On the log scale: a household's day-to-day variation is multiplicative (right-skewed), so a
    # linear z calls an ordinary busy day an outlier far more often than an equally rare quiet one.
    c0 = th.num(_SEC, "min_scale_kwh")  # started log: keeps near-zero days finite
    with np.errstate(invalid="ignore", divide="ignore"):
        z_sigma = log_scale * np.sqrt(1.0 + 0.5 * np.pi / weekday_n)
        z = (np.log(kwh + c0) - np.log(weekday_kwh * area_ratio + c0)) / z_sigma
    # CUSUM of the deficit against the expected day (level × weekday × area change), in σ.
    judged = ~np.isnan(kwh) & ~np.isnan(base) & ~outage
    with np.errstate(invalid="ignore", divide="ignore"):
        deficit_z = np.where(judged, (base * area_ratio - kwh) / scale, np.nan)
    cusum = Cusum(state["deficit_cusum"], th.num("sustained_drop", "cusum_k")).update(deficit_z).get().astype(np.float64)

    # The area's balance, recorded into its series before the window is read.
    export = state["area_export_kwh"][0, :ipd].astype(np.float64) if ipd <= _MAX_INTERVALS else np.zeros(ipd)
    balance = day_balance(day, archive, base, reverse, export, loss_limits(archive, th))
    series = LossSeries.of(state)
    series.record(day_no, balance.loss_rate, balance.supplied_kwh)
    loss_rates, loss_excess = series.rates(), series.excess_kwh()
    window = np.concatenate([past[:, 1:], kwh[:, None]], axis=1)  # days today−27 … today
    day_factors = np.roll(factor, -1, axis=1)[:, np.arange(HISTORY_DAYS) % _WEEK]
    deficits = level[:, None] * day_factors - window
    drop_age = _track_drops(state, judged, deficit_z, cusum, level, kwh, base, area_ratio, loss_rates, scale, th)
    loss_match = match_drops(
        drop_age,
        state["drop_ref_kwh"].astype(np.float64)[:, None] * day_factors - window,
        loss_rates,
        series.supplied.get()[0].astype(np.float64),
        state["drop_loss_base"].astype(np.float64),
        state["drop_sigma_kwh"].astype(np.float64),
        th.num("theft_suspected", "loss_min_sigma_pct") / 100.0,
        th.count("theft_suspected", "loss_base_days"),
        th.num(_SEC, "level_days"),
    )
    attribution = explain(
        deficits,
        loss_excess,
        th.count("area_high_loss", "attribution_min_days"),
        th.count("area_high_loss", "attribution_recent_days"),
        th.num("area_high_loss", "attribution_min_rise_z"),
    )

    hourly = _hourly(day.energy, ipd)
    day_type = weekday_type(day.weekday, th)
    shape = state["shape_kwh"][:, day_type].astype(np.float64)
    cv_today, corr_today = _profile_today(hourly, shape, ~np.isnan(kwh))
    return DayContext(
        day=day,
        archive=archive,
        day_no=day_no,
        kwh=kwh,
        hourly=hourly,
        weekday_kwh=weekday_kwh,
        weekday_n=weekday_n,
        scale=scale,
        z=z,
        z_sigma=z_sigma,
        weekday_factor=factor[:, 0],
        base=base,
        area_ratio=area_ratio,
        adj_ratio=adj_ratio,
        cusum=cusum,
        window_kwh=window,
        deficits=deficits,
        balance=balance,
        loss_rates=loss_rates,
        loss_excess_kwh=loss_excess,
        attribution=attribution,
        drop_age=drop_age,
        loss_match=loss_match,
        outage=outage,
        reverse_kwh=reverse,
        day_type=day_type,
        shape=shape,
        cv_today=cv_today,
        cv_usual=state["cv_mean"][:, day_type].astype(np.float64),
        corr_today=corr_today,
        corr_usual=state["corr_mean"][:, day_type].astype(np.float64),
    )


def _track_drops(
    state: Arrays,
    judged: np.ndarray,
    deficit_z: np.ndarray,
    cusum: np.ndarray,
    level: np.ndarray,
    kwh: np.ndarray,
    base: np.ndarray,
    area_ratio: float,
    loss_rates: np.ndarray,
    scale: np.ndarray,
    th: Thresholds,
) -> np.ndarray:
    """Each meter's drop in progress: its onset, the level and the area's loss rate before it.

    A drop begins on a judged day that adds to the deficit CUSUM (standardized
    deficit above ``cusum_k``) while none is in progress; the meter's level and
    the median of the area's loss rate over the days before (the ring, today
    excluded) are kept as the references of :func:`match_drops`, with the
    meter's noise then (the scale learnt later is inflated by the drop
    itself). The area's rate is the median of its last
    ``[theft_suspected] loss_base_days`` computable days before the onset:
    recent enough that a tap or a thief who began a few days earlier is
    not credited to this meter. It ends on a
    judged day at or above the kept level once the CUSUM has drained too (one
    good day of a thief is noise, not the end). Returns days since the onset,
    −1 where no drop is in progress (the state keeps 255).
    """
    ref, loss_base, age, sigma = state["drop_ref_kwh"], state["drop_loss_base"], state["drop_age"], state["drop_sigma_kwh"]
    active = age != _NO_DROP
    with np.errstate(invalid="ignore"):
        ended = active & judged & (kwh >= ref * (base / level) * area_ratio) & (cusum <= 0.0)
        started = ~active & judged & ~np.isnan(level) & (cusum > 0.0) & (deficit_z > 0.0)
    before = loss_rates[:-1][~np.isnan(loss_rates[:-1])][-th.count("theft_suspected", "loss_base_days") :]
    usual_loss = float(np.median(before)) if len(before) else np.nan
    age[active & ~ended] = np.minimum(age[active & ~ended].astype(np.int16) + 1, _NO_DROP - 1)
    age[ended] = _NO_DROP
    ref[ended] = np.nan
    loss_base[ended] = np.nan
    sigma[ended] = np.nan
    age[started] = 0
    sigma[started] = scale[started]
    ref[started] = level[started]
    loss_base[started] = usual_loss
    return np.where(age == _NO_DROP, -1, age.astype(np.int64))


def _weekday_baselines(past: np.ndarray, th: Thresholds, day_types: np.ndarray) -> tuple[np.ndarray, ...]:
    """From the 4 weeks before today ([n, 28], column 0 = today's weekday), per meter:

    the median of today's weekday over the last ``baseline_weeks`` weeks,
    how many such days it used, the robust scale of its day-to-day noise
    (the Shamos estimator over same-weekday pairs: the weekly rhythm
    cancels out, and it is unbiased however few weeks there are; needs one
    pair per weekday, i.e. two weeks), and the weekday factors [n, 7]
    (weekday median / the 28 days' median, 1 without history): the weekday
    pattern survives a drop that contaminates the medians themselves;
    and the same robust scale of the started log ``ln(kWh + min_scale_kwh)``
    (floored at ``min_scale_pct`` / 100; the larger of the same-weekday and
    the consecutive-day estimates), for the swing z.
    """
    n = len(past)
    weeks = HISTORY_DAYS // _WEEK
    min_weeks = th.count(_SEC, "min_weekday_weeks")
    groups = past.reshape(n, weeks, _WEEK).transpose(0, 2, 1)  # [n, weekday, week]
    weekday_med = RobustZ(min_weeks, 0.0).update(groups.reshape(n * _WEEK, weeks)).get()[0].reshape(n, _WEEK)
    swing_weeks = min(max(th.count("consumption_swing", "baseline_weeks"), 1), weeks)
    recent = past[:, HISTORY_DAYS - _WEEK * swing_weeks :: _WEEK]
    weekday_kwh = RobustZ(min_weeks, 0.0).update(recent).get()[0]
    overall = RobustZ(th.count(_SEC, "min_history_days"), 0.0).update(past).get()[0]
    noise = ShamosScale(min_pairs=_WEEK, min_scale=th.num(_SEC, "min_scale_kwh")).update(groups).get()
    noise = np.fmax(noise, _consecutive_scale(past, day_types))
    scale = np.maximum(noise, th.num(_SEC, "min_scale_pct") / 100.0 * weekday_kwh)
    c0 = th.num(_SEC, "min_scale_kwh")
    log_groups = np.log(np.maximum(groups, 0.0) + c0)
    log_scale = ShamosScale(min_pairs=_WEEK, min_scale=th.num(_SEC, "min_scale_pct") / 100.0).update(log_groups).get()
    log_scale = np.fmax(log_scale, _consecutive_scale(np.log(np.maximum(past, 0.0) + c0), day_types))
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.nan_to_num(weekday_med / overall[:, None], nan=1.0, posinf=1.0)
    return weekday_kwh, np.count_nonzero(~np.isnan(recent), axis=1), scale, log_scale, factor


def _consecutive_scale(series: np.ndarray, day_types: np.ndarray) -> np.ndarray:
    """Shamos σ from consecutive days of the same day type ([n, K] → [n], NaN with fewer than 10 pairs).

    Used beside the same-weekday estimate, the larger of the two winning:
    in the first weeks a handful of same-weekday pairs often understates
    the noise (and a z ≥ 4 or a CUSUM against an understated σ is an
    ordinary week). Pairs crossing from a working day to a weekend or back
    are left out, so a shop's closed Sunday is not noise.
    """
    lag1 = np.abs(np.diff(series, axis=1))
    lag1[:, day_types[1:] != day_types[:-1]] = np.nan
    enough = np.count_nonzero(~np.isnan(lag1), axis=1) >= 10
    out = np.full(len(series), np.nan)
    if enough.any():
        out[enough] = SHAMOS_TO_SIGMA * np.nanmedian(lag1[enough], axis=1)
    return out


def _profile_today(hourly: np.ndarray | None, shape: np.ndarray, judged: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Today's intra-day CV and rank correlation with the usual profile (NaN where not judged).

    Spearman, not Pearson: one hour with the washing machine must not decide
    whether the day has the household's shape.
    """
    if hourly is None:
        return np.full(len(judged), np.nan), np.full(len(judged), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # days without any hourly value
        cv = np.nanstd(hourly, axis=1) / np.nanmean(hourly, axis=1)
    corr = spearman(hourly, shape, min_pairs=HOURS // 2)
    return np.where(judged, cv, np.nan), np.where(judged, corr, np.nan)


def _hourly(energy: np.ndarray, ipd: int) -> np.ndarray | None:
    """[n, 24] hourly kWh (NaN where an interval of the hour is missing); None for data coarser than hourly."""
    if ipd < HOURS or ipd % HOURS:
        return None
    return energy.astype(np.float64).reshape(len(energy), HOURS, ipd // HOURS).sum(axis=2)


def _outage(day: DayView, archive: AreaArchive) -> np.ndarray:
    """Meters whose low day an outage explains: their own outage event, or the area meter's."""
    events = day.events_of((_OUTAGE,))
    if any(e.meter_id == archive.area_meter_id for e in events):
        return np.ones(archive.n, dtype=bool)
    out = np.zeros(archive.n, dtype=bool)
    rows = archive.indices([e.meter_id for e in events])
    out[rows[rows >= 0]] = True
    return out
