"""Does the area's loss move, interval by interval, with what a meter reports? A within-day test per meter.

Stolen energy appears twice: the thief's meter reads less and the area's
loss rises by the same energy. Day by day that pairing is weak evidence
against a small thief in a large area: the area's technical loss varies
from day to day by several percent of itself (temperature, load balance),
which is as much energy as a household steals (``balance/match.py`` needs
a week for a few kWh/day). Within a day the pairing is much sharper. A
bypass (part of the load wired around the meter) or a scaled-down reading
(Jokar h1, h3) leaves in the loss of every interval a share of what the
meter *really* used, and what it really used is what it reports scaled up:
``loss_t = technical_t + β · y_t`` with ``β = (1 − α) / α`` for a meter
that records a share α of its load. A household's load jumps from
interval to interval (kettles, pumps, cookers), so its readings carry a
signature no other meter and no technical loss shares.

The test, for each meter i on one day, over the intervals the area meter
reported:

    Δloss_t = a · ΔC_t + b · Δ(C_t²) + c + β_i · Δy_it + e_t

where ``C_t`` is the energy the meters recorded in interval t (technical
loss is a no-load part plus a copper part growing with the load's square;
the load as the meters measure it, not as the area meter does: the
loss's own noise is in the area meter's reading one for one, and a
regressor carrying the noise of the regressand drags every coefficient
with it) and ``Δ``
is the first difference between consecutive intervals. Differencing keeps
the interval-to-interval jumps (which identify a meter) and removes every
smooth component of the loss the regressors do not model: a tap's or
another thief's daily shape, the household shape all homes share, a
model of technical loss that is only approximately right, the loss's
daily level. The least-squares ``β_i`` (Frisch–Waugh: loss and readings
first residualised on the common regressors, once for all meters) and its
standard error give ``z_i = β_i / se_i``; an honest meter has β ≈ 0, a
meter whose reading runs backwards in the loss (a clock off by an
interval, a spike the area never supplied, a meter fed by another area)
has β < 0, and only β > 0 is theft-like.

Missing readings are filled at the meter's own mean rate of the day, as
the balance fills them, so the filled reading carries no jump; the loss of
that interval does (what the meter really used then, less the fill), so
pairs touching an interval with a filled reading are left out while at
least ``min_points`` consecutive-interval pairs remain (hourly data gives
at most 23); a patchier day is judged on all of its pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.detector.stats.robust import MAD_TO_SIGMA

__all__ = ["IntervalMatch", "interval_match"]


@dataclass(frozen=True, slots=True, eq=False)
class IntervalMatch:
    """Per meter (aligned with the rows of ``energy``): today's within-day loss coefficient."""

    beta: np.ndarray  # [n] share of the meter's reading that reappears in the loss (NaN: not judged)
    se: np.ndarray  # [n] its standard error (NaN: not judged)
    points: int  # consecutive-interval pairs used

    @property
    def z(self) -> np.ndarray:
        """β / se; 0 where not judged."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nan_to_num(self.beta / self.se, nan=0.0, posinf=0.0, neginf=0.0)

    def calibrated_z(self, min_meters: int) -> np.ndarray:
        """z standardised by the area's own spread of z today: (z − median) / (1.4826 · MAD), at least ÷ 1.

        The least-squares standard error assumes white noise of one size;
        the loss's is neither quite, which widens every meter's z alike. Most
        meters of an area are honest, so the spread of their z says how wide
        the null really is today (never narrower than the nominal N(0, 1)).
        With fewer than ``min_meters`` judged meters the nominal z is kept.

        >>> m = IntervalMatch(np.array([0.0, 0.1, -0.1, 0.2, 3.0]), np.full(5, 0.05), 95)
        >>> m.z.round(1), m.calibrated_z(4).round(1)
        (array([ 0.,  2., -2.,  4., 60.]), array([-0.7,  0. , -1.3,  0.7, 19.6]))
        """
        med, spread = self._null(min_meters)
        return np.where(self._judged, (self.z - med) / spread, 0.0)

    def log_lr(self, beta_theft: np.ndarray, min_meters: int, huber_k: float) -> np.ndarray:
        """Today's robust log likelihood ratio per meter of β = ``beta_theft`` against β = 0, on the calibrated null.

        The calibrated z (:meth:`calibrated_z`) measures β in units of the
        calibrated standard error ``se · spread``, so β = b puts it at
        ``d = b / (se · spread)``. Knowing the β a theft would leave (for a
        meter reading a share α of its load, ``(1 − α) / α``: its deficit
        over what it still reads) sharpens the test both ways: a share well
        below it is evidence *against* theft (a genuine drop leaves none).
        The densities are Huber's least-favourable ones (Huber 1964): normal
        within ``huber_k`` of their centre, exponential tails beyond, so the
        ratio ``ρ(z) − ρ(z − d)`` is ``d · z − d² / 2`` near both centres and
        at most ``huber_k · d`` either way: one day whose loss holds far more
        (or far less) of the readings than either hypothesis explains, as a
        loss model's error or another meter's doing leaves (seen on genuine
        drops, at 2–7 × the theft's share), is bounded evidence, not a
        case. Unlike a cut at ``d`` it keeps the expected ratio of a small
        share positive under theft. 0 where not judged or ``beta_theft ≤ 0``.

        >>> m = IntervalMatch(np.array([0.0, 0.1, -0.1, 0.2, 2.0, 5.0]), np.full(6, 1.0), 95)
        >>> m.log_lr(np.full(6, 2.0), 4, 1.5).round(2)    # the fifth meter holds the share a theft would leave
        array([-2.09, -1.95, -2.22, -1.8 ,  1.64,  3.  ])
        """
        med, spread = self._null(min_meters)
        b = np.asarray(beta_theft, np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            d = b / (self.se * spread)
            zc = (self.z - med) / spread
            out = _huber(zc, huber_k) - _huber(zc - d, huber_k)
        return np.where(self._judged & (b > 0) & np.isfinite(out), out, 0.0)

    @property
    def _judged(self) -> np.ndarray:
        return ~np.isnan(self.beta) & ~np.isnan(self.se)

    def _null(self, min_meters: int) -> tuple[float, float]:
        """Today's null of the area: median and spread (1.4826 · MAD, at least 1) of its meters' z; (0, 1) when too few."""
        judged = self._judged
        if judged.sum() < min_meters:
            return 0.0, 1.0
        zz = self.z[judged]
        med = float(np.median(zz))
        return med, max(MAD_TO_SIGMA * float(np.median(np.abs(zz - med))), 1.0)


def _huber(u: np.ndarray, k: float) -> np.ndarray:
    """Huber's ρ: u² / 2 within ±k, k · |u| − k² / 2 beyond."""
    a = np.abs(u)
    return np.where(a <= k, 0.5 * u * u, k * a - 0.5 * k * k)


def interval_match(energy: np.ndarray, loss: np.ndarray, supplied: np.ndarray, min_points: int) -> IntervalMatch:
    """Regress the first differences of the interval loss on each meter's readings (see the module docstring).

    ``energy`` [n, T]: the meters' interval kWh (NaN missing); ``loss``,
    ``supplied`` [T]: the area's interval loss and supplied kWh (NaN
    outside the window the area meter reported).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.lognormal(-3.0, 0.4, (30, 96))               # thirty households' readings
    >>> supplied = 10.0 + np.sin(np.arange(96) / 15.0) + y.sum(axis=0) + 1.5 * y[1]
    >>> loss = 0.04 * supplied + rng.normal(0, 0.002, 96) + 1.5 * y[1]   # meter 1 records 40 % of its load
    >>> m = interval_match(y, loss, supplied, min_points=24)
    >>> round(float(m.beta[1]), 1), bool(m.z[1] > 10), bool((np.abs(np.delete(m.z, 1)) < 3.5).all())
    (1.6, True, True)
    """
    energy = np.asarray(energy, np.float64)
    n, t = energy.shape
    loss = np.asarray(loss, np.float64)
    supplied = np.asarray(supplied, np.float64)
    nan = np.full(n, np.nan)
    ok = ~np.isnan(loss) & ~np.isnan(supplied)
    pair = ok[1:] & ok[:-1]
    m = int(pair.sum())
    if m < max(min_points, 8) or t < 2:
        return IntervalMatch(nan, nan.copy(), m)
    known = ~np.isnan(energy)
    # A reading missing among a meter's others is filled at its mean rate: the loss of that interval then
    # holds the fill's error (what the meter really used minus its mean), a jump no regressor carries.
    # Pairs touching such an interval are left out, while enough remain (a patchy day is judged whole).
    filled = (known.any(axis=1)[:, None] & ~known).any(axis=0)
    clean = pair & ~filled[1:] & ~filled[:-1]
    if int(clean.sum()) >= max(min_points, 8):
        pair, m = clean, int(clean.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        own = np.where(known, energy, 0.0).sum(axis=1) / known.sum(axis=1)
    y = np.where(known, energy, np.nan_to_num(own)[:, None])
    # The load is measured by the meters (C = supplied − loss), not by the area meter: the loss's own noise
    # is in the supplied energy one for one, and as a regressor it would drag every coefficient with it.
    consumed = supplied - loss
    scale = float(np.mean(consumed[ok])) or 1.0
    f = consumed / scale
    # Weighted: the loss's own noise grows with the load it is a share of, so each pair is scaled by 1 / C.
    w = 1.0 / np.maximum(0.5 * (f[1:] + f[:-1]), 0.1)[pair]
    dz = np.stack([np.diff(f), np.diff(f * f), np.ones(t - 1)], axis=1)[pair] * w[:, None]  # [m, 3]
    dl = np.diff(loss)[pair] * w
    dy = np.diff(y, axis=1)[:, pair] * w[None, :]  # [n, m]
    q, _ = np.linalg.qr(dz)
    lr = dl - q @ (q.T @ dl)
    yr = dy - (dy @ q) @ q.T
    syy = np.einsum("ij,ij->i", yr, yr)
    syl = yr @ lr
    sll = float(lr @ lr)
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = np.where(syy > 0, syl / syy, np.nan)
        resid = np.maximum(sll - beta * syl, 0.0) / max(m - dz.shape[1] - 1, 1)
        se = np.sqrt(resid / syy)
    judged = known.sum(axis=1) > 0
    return IntervalMatch(np.where(judged, beta, np.nan), np.where(judged, se, np.nan), m)
