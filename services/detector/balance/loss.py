"""An area's energy balance over one day: supplied, consumed, loss rate, coverage, class.

Line loss = energy the area meter supplied minus what the customers'
meters consumed; its rate (supplied − consumed) / supplied is the number
utilities manage areas by. Missing meters make loss look high, so a day is
judged only with enough coverage, and within a computable day the few
missing cells are filled with each meter's own rate rather than counted
as zero. The window is the intervals the area meter itself reported, so a
concentrator outage that takes both sides away shortens the day instead of
inventing loss.

Reverse energy. The area meter measures the net flow from the
transformer, so a generation customer's export (its reverse register) is
energy supplied to the area's lines too; a customer *without* generation
whose reverse register grows (reversed wiring) consumed that energy, it was
just metered backwards. So supplied = area meter + generation customers'
export, and consumed = forward energy + the others' reverse energy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.detector.archive import AreaArchive
from services.detector.day import DayView

__all__ = ["DayBalance", "LossLimits", "LossStatus", "day_balance"]

LossStatus = str  # "compliant" | "high" | "negative" | "uncomputable"
_HOURS = 24


@dataclass(frozen=True, slots=True)
class LossLimits:
    """Classification limits of one area, rates as fractions (0.10 = 10 %)."""

    high: float  # rate above this: high loss (高损)
    negative: float  # rate below this: negative loss (负损)
    min_coverage: float  # share of active meters that must have reported (不可算 below)
    min_meter_share: float  # share of the window's intervals a meter needs to count as reported


@dataclass(frozen=True, slots=True, eq=False)
class DayBalance:
    """One day's balance; rates are fractions, NaN when not computable.

    ``reason`` says why a day is uncomputable: ``"area_meter"`` (the area
    meter reported too few intervals), ``"coverage"`` (too few active meters
    reported), ``"no_supply"`` (the area meter measured nothing).
    """

    status: LossStatus
    reason: str
    supplied_kwh: float
    consumed_kwh: float  # metered + imputed
    imputed_kwh: float  # part of consumed filled in for missing cells
    loss_kwh: float
    loss_rate: float
    coverage: float  # share of active meters reported over the window
    active_meters: int
    reported_meters: int
    window_intervals: int  # intervals the area meter reported
    hourly_rate: np.ndarray  # float64 [24], NaN for hours not fully in the window (empty if sub-hourly data is absent)
    interval_supplied_kwh: np.ndarray  # float64 [intervals] supplied per interval, NaN outside the window
    interval_loss_kwh: np.ndarray  # float64 [intervals] supplied − consumed (forward, filled) per interval, NaN outside the window

    @property
    def computable(self) -> bool:
        return self.status != "uncomputable"


def day_balance(
    day: DayView,
    archive: AreaArchive,
    expected_kwh: np.ndarray,
    reverse_kwh: np.ndarray,
    export_kwh: np.ndarray,
    limits: LossLimits,
) -> DayBalance:
    """The balance of a closed day.

    ``expected_kwh`` is each meter's usual daily energy (NaN unknown): it
    fills the missing cells of meters that did not report. A reported
    meter's few missing cells are filled at its own mean rate of the day.
    ``reverse_kwh`` [n] is each meter's reverse energy of the day,
    ``export_kwh`` [intervals] the generation customers' part of it per
    interval (see the module docstring).

    Over the window W of intervals the area meter reported::

        supplied = Σ_t∈W (area_t + export_t)
        consumed = Σ_i Σ_t∈W e_it + Σ_i without generation reverse_i   (missing e_it filled as above)
        rate     = (supplied − consumed) / supplied
        coverage = reported active meters / active meters
    """
    ipd = day.intervals_per_day
    window = ~np.isnan(day.area_energy)
    w = int(window.sum())
    energy = day.energy[:, window].astype(np.float64)
    known = ~np.isnan(energy)
    known_n = known.sum(axis=1)
    metered = np.where(known, energy, 0.0).sum(axis=1)
    reported = known_n >= max(1, int(np.ceil(limits.min_meter_share * w)))
    active = archive.active
    n_active = int(active.sum())
    n_reported = int((reported & active).sum())
    coverage = n_reported / n_active if n_active else float("nan")

    with np.errstate(invalid="ignore", divide="ignore"):
        own_rate = metered / known_n
        usual_rate = np.asarray(expected_kwh, np.float64) / ipd
    fallback = float(np.median(own_rate[reported & active])) if (reported & active).any() else 0.0
    rate = np.where(reported, own_rate, np.where(np.isnan(usual_rate), fallback, usual_rate))
    rate = np.where(active | reported, rate, 0.0)  # an inactive meter that sent nothing consumed nothing
    filled = np.where(known, energy, rate[:, None])
    backwards = float(np.nansum(np.where(archive.has_generation, 0.0, reverse_kwh)))
    consumed_t = filled.sum(axis=0)
    supplied_t = day.area_energy[window].astype(np.float64) + export_kwh[window]
    supplied = float(supplied_t.sum())
    imputed = float(consumed_t.sum() - metered.sum())
    consumed = float(consumed_t.sum()) + backwards
    loss = supplied - consumed

    reason = ""
    if w < int(np.ceil(limits.min_meter_share * ipd)):
        reason = "area_meter"
    elif not n_active or coverage < limits.min_coverage:
        reason = "coverage"
    elif supplied <= 0.0:
        reason = "no_supply"
    loss_rate = float("nan") if reason else loss / supplied
    if reason:
        status = "uncomputable"
    elif loss_rate > limits.high:
        status = "high"
    elif loss_rate < limits.negative:
        status = "negative"
    else:
        status = "compliant"
    return DayBalance(
        status=status,
        reason=reason,
        supplied_kwh=supplied,
        consumed_kwh=consumed,
        imputed_kwh=imputed,
        loss_kwh=loss,
        loss_rate=loss_rate,
        coverage=coverage,
        active_meters=n_active,
        reported_meters=n_reported,
        window_intervals=w,
        hourly_rate=_hourly_rate(supplied_t, window, consumed_t, ipd) if not reason else np.empty(0),
        interval_supplied_kwh=_spread(supplied_t, window, ipd),
        interval_loss_kwh=_spread(supplied_t - consumed_t, window, ipd),
    )


def _spread(values: np.ndarray, window: np.ndarray, ipd: int) -> np.ndarray:
    """``values`` of the window's intervals on the whole day's grid (NaN outside the window)."""
    out = np.full(ipd, np.nan)
    out[window[:ipd]] = values
    return out


def _hourly_rate(supplied_t: np.ndarray, window: np.ndarray, consumed_t: np.ndarray, ipd: int) -> np.ndarray:
    """Loss rate of each hour the area meter covered completely (shows *when* energy goes missing).

    Forward energy only on the consumed side: a reversed-wiring meter's
    energy is known per day, not per hour.
    """
    if ipd % _HOURS:
        return np.empty(0)
    k = ipd // _HOURS
    supplied, consumed = np.full(ipd, np.nan), np.full(ipd, np.nan)
    supplied[window], consumed[window] = supplied_t, consumed_t
    supplied_h = supplied.reshape(_HOURS, k).sum(axis=1)  # NaN if an interval is missing
    consumed_h = consumed.reshape(_HOURS, k).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(supplied_h > 0, (supplied_h - consumed_h) / supplied_h, np.nan)
