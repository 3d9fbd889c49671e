"""Does the area's loss rise by what a meter stopped reading? Each drop tested against its own onset.

Stolen energy appears twice: the thief's meter reads less and the area's
loss rises by the same energy. A genuine fall in use (a household that
shrank, a holiday) lowers the meter and leaves the loss where it was.
So, for a meter whose drop began ``a`` days ago (its *onset*, kept in the
consumption family's state with the meter's level and the area's loss
rate of that day), over the days since the onset:

- ``d``: the meter's mean deficit against its own pre-drop level
  (level at onset × weekday factor − observed kWh);
- ``Δ``: the area's mean loss energy above its pre-drop rate
  (``(rate − rate at onset) × supplied``).

Two hypotheses: *theft*, Δ ≈ d; *genuine drop*, Δ ≈ 0; both with the
noise σ² = (σ_loss² + σ_meter²) / days of the two means. Their log
likelihood ratio, two-sided about d (a loss that rose far *more* than the
meter fell has another author, a tap or a thief elsewhere, and is no
better evidence against this meter than one that did not rise):

    log LR = d · (2Δ' − d) / (2σ²),   Δ' = min(Δ, 2d − Δ)

(``coverage`` ρ = clip(Δ / d, 0, 1) says how much of the deficit the loss
rise could hold.)

It grows with the days since the onset, so a large theft is evident on
its first full day and a small one after a week, while a genuine drop
gathers negative evidence at the same pace. Because everything is
measured from the meter's own onset, a theft that has lasted for weeks
is still compared with the days before it (the trailing window alone
would hold only theft days, where nothing varies to correlate), and a
loss that was already high before the onset (a tap, another thief) is
not credited to a meter that fell later.

Attribution of a high-loss area ranks meters by ``score = ramp(log LR) ·
min(d, Δ) / max(d, Δ)``: its drop is confirmed by the loss *and* is
the size of the loss rise it is compared with.

Explaining away: the loss rise is one quantity shared by every meter that
fell at the same time. After a first test, the deficits of the drops the
loss confirms *with a better size match* are taken off the loss rise each
other meter is compared with, and the test runs again: a noisy dip beside
a thief is left with nothing to explain, while two thieves who started
together (equal matches) each keep theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.detector.stats.ramp import ramp
from services.detector.stats.robust import RobustZ

__all__ = ["LossMatch", "match_drops"]


@dataclass(frozen=True, slots=True, eq=False)
class LossMatch:
    """Per meter (aligned with the archive): its drop since onset against the area's loss rise since then."""

    days: np.ndarray  # int [n] days since the onset with both numbers known (0: no drop, or nothing known)
    deficit_kwh: np.ndarray  # [n] d: mean deficit against the level at onset (kWh/day)
    loss_rise_kwh: np.ndarray  # [n] Δ: mean loss energy above the rate at onset (kWh/day)
    coverage: np.ndarray  # [n] ρ = clip(Δ / d, 0, 1)
    log_lr: np.ndarray  # [n] log likelihood ratio theft (Δ = d) vs genuine drop (Δ = 0); 0 without a drop
    drop_z: np.ndarray  # [n] d / its σ (days since onset and the reference level's own uncertainty): is it a drop at all
    sigma_kwh: np.ndarray  # [n] σ of the difference of the two means

    def score(self, start: float, full: float) -> np.ndarray:
        """Attribution score in [0, 1]: confirmation by the loss × size match of d and Δ."""
        d, t = self.deficit_kwh, self.loss_rise_kwh
        with np.errstate(invalid="ignore", divide="ignore"):
            size = np.where((d > 0) & (t > 0), np.minimum(d, t) / np.maximum(d, t), 0.0)
        return ramp(self.log_lr, start, full) * np.nan_to_num(size)


def match_drops(
    age: np.ndarray,
    deficits: np.ndarray,
    rates: np.ndarray,
    supplied: np.ndarray,
    loss_base: np.ndarray,
    meter_sigma: np.ndarray,
    min_loss_sigma: float,
    base_days: int = 7,
    level_days: float = 28.0,
) -> LossMatch:
    """Test each meter's drop against the area's loss over the days since its onset.

    ``age`` [n]: days since the onset (−1: no drop in progress);
    ``deficits`` [n, K]: expected (level at onset × weekday factor) −
    observed kWh, days today−K+1 … today; ``rates``, ``supplied`` [K]: the
    area's daily loss rate and supplied energy, same days; ``loss_base``
    [n]: the area's loss rate before each meter's onset (the median of
    ``base_days`` days, whose own uncertainty widens σ); ``meter_sigma``
    [n]: σ of the meter's daily kWh; ``min_loss_sigma``: floor of σ of the
    daily loss rate (a fraction); ``level_days``: the memory of the
    meter's level (an EWM span), whose own error does not average out over
    the days since the onset and so widens σ by ``meter_sigma² / level_days``.

    >>> import numpy as np
    >>> rates = np.array([0.04, 0.041, 0.039, 0.04, 0.09, 0.091, 0.089])   # the loss jumps by 5 % of 1000 kWh
    >>> supplied = np.full(7, 1000.0)
    >>> deficits = np.array([[0, 0, 0, 0, 50, 49, 51.0],     # the thief: 50 kWh/day since day 4
    ...                      [0, 0, 0, 0, 0, 20, 21.0]])     # a household that fell 20 kWh/day at day 5
    >>> m = match_drops(np.array([2, 1]), deficits, rates, supplied, np.array([0.04, 0.04]), np.array([2.0, 2.0]), 0.002)
    >>> m.deficit_kwh.round(1), m.loss_rise_kwh.round(1) + 0.0, m.coverage.round(2)
    (array([50. , 20.5]), array([50.,  0.]), array([1., 0.]))
    >>> bool(m.log_lr[0] > 3), bool(m.log_lr[1] < 0), m.score(1.0, 3.0).round(2)   # the thief explains the rise away
    (True, True, array([1., 0.]))
    """
    n, k = deficits.shape
    age = np.asarray(age, np.int64)
    rates = np.asarray(rates, np.float64)
    supplied = np.asarray(supplied, np.float64)
    span = np.where(age >= 0, np.minimum(age + 1, k), 0)
    after = np.arange(k)[None, :] >= (k - span)[:, None]
    excess = (rates[None, :] - np.asarray(loss_base, np.float64)[:, None]) * supplied[None, :]
    ok = after & ~np.isnan(deficits) & ~np.isnan(excess)
    days = ok.sum(axis=1)
    supply = float(np.nanmedian(supplied)) if (~np.isnan(supplied)).any() else np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(ok, deficits, 0.0).sum(axis=1) / days
        loss_var = (max(_day_noise(rates), min_loss_sigma) * supply) ** 2
        meter_var = np.asarray(meter_sigma, np.float64) ** 2
        drop_z = d / np.sqrt(meter_var / days + meter_var / level_days)
        sigma = np.sqrt((loss_var + meter_var) / days + loss_var * 0.5 * np.pi / base_days + meter_var / level_days)
        t, rho, log_lr = _test(ok, days, d, excess, sigma)
        # Explaining away: a drop the loss confirms takes its share of the loss rise; another meter
        # that fell at the same time is judged on what is left (a small dip beside a thief is not one).
        first = np.nan_to_num(np.where(log_lr > 0, np.minimum(d, t) / np.maximum(d, t), 0.0))
        s = np.flatnonzero(first > 0)
        if len(s):
            theirs = np.where(after[s] & ~np.isnan(deficits[s]), deficits[s], 0.0)  # [s, K]
            better = (first[s][None, :] > first[:, None]).astype(np.float64)  # [n, s]: j explains before i
            others = better @ theirs  # [n, K]
            # their own day-to-day noise is in the loss too, so it widens what is left for i
            their_var = np.asarray(meter_sigma, np.float64)[s] ** 2
            sigma = np.sqrt(sigma**2 + better @ their_var / days + better @ their_var / level_days)
            t, rho, log_lr = _test(ok, days, d, excess - others, sigma)
    has = (days > 0) & (d > 0) & np.isfinite(log_lr)
    return LossMatch(
        days=days,
        deficit_kwh=np.where(days > 0, d, np.nan),
        loss_rise_kwh=np.where(days > 0, t + 0.0, np.nan),
        coverage=np.where(has, rho, 0.0),
        log_lr=np.where(has, log_lr, 0.0),
        drop_z=np.where(has, drop_z, 0.0),
        sigma_kwh=sigma,
    )


def _test(ok: np.ndarray, days: np.ndarray, d: np.ndarray, excess: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, ...]:
    """Mean loss rise Δ over each meter's days, its coverage ρ of d and the log likelihood ratio."""
    t = np.where(ok, excess, 0.0).sum(axis=1) / days
    rho = np.clip(t / d, 0.0, 1.0)
    near = np.minimum(t, 2.0 * d - t)  # a rise beyond d is as far from "this meter" as one short of it
    return t, rho, d * (2.0 * near - d) / (2.0 * sigma**2)


def _day_noise(rates: np.ndarray) -> float:
    """Robust σ of the daily loss rate from its day-to-day differences (a lasting step is one outlier)."""
    diffs = np.diff(rates[~np.isnan(rates)])
    if len(diffs) < 3:
        return 0.0
    return float(RobustZ(min_count=1, min_scale=0.0).update(diffs[None, :]).get()[1][0]) / np.sqrt(2.0)
