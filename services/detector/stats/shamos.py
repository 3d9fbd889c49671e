"""Robust scale from differences within groups: the Shamos estimator, vectorised over meters.

A meter's day-to-day noise has to be measured around *its* weekly rhythm:
a shop's Sunday is not noise. Differences between days of the same
weekday cancel the rhythm without estimating it first, and the median of
their absolute values is a consistent estimator of σ once scaled: for
normal data ``|x_a − x_b| ~ |N(0, 2σ²)|``, whose median is
``0.6745 · √2 · σ``, so σ = 1.0483 · median. Residuals around a median of
only four values would shrink it instead (two of the four sit next to
their median).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

__all__ = ["SHAMOS_TO_SIGMA", "ShamosScale"]

#: 1 / (√2 · Φ⁻¹(3/4)): makes the median absolute pairwise difference a consistent σ.
SHAMOS_TO_SIGMA = 1.0483


class ShamosScale:
    """σ per row from the absolute differences of values within each group.

    Parameters
    ----------
    min_pairs
        Fewest within-group pairs (both values present) a row needs; with
        fewer its scale is NaN.
    min_scale
        Floor of the scale, in the unit of the values.

    ``update(groups)`` takes ``[n, g, k]`` values (NaN = missing), e.g. 4
    weeks of daily kWh grouped by weekday (g = 7, k = 4), and computes per
    row ``max(1.0483 · med_{groups, a<b} |x_a − x_b|, min_scale)``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> rhythm = np.array([10, 10, 10, 10, 10, 2, 2.0])         # a shop: closed at weekends
    >>> weeks = rhythm[None, :, None] + rng.normal(0, 1.0, (1, 7, 400))
    >>> round(float(ShamosScale(min_pairs=10, min_scale=0.0).update(weeks).get()[0]), 1)
    1.0
    >>> ShamosScale(min_pairs=10, min_scale=0.0).update(np.full((1, 7, 4), 5.0)).get()
    array([0.])

    References
    ----------
    Shamos, M.I. (1976). Geometry and statistics: problems at the
    interface. In Algorithms and Complexity, 251-280.
    Bickel, P.J., Lehmann, E.L. (1976). Descriptive statistics for
    nonparametric models III: dispersion. Annals of Statistics 4(6).
    """

    __slots__ = ("min_pairs", "min_scale", "scale")

    def __init__(self, min_pairs: int, min_scale: float) -> None:
        self.min_pairs = int(min_pairs)
        self.min_scale = float(min_scale)
        self.scale = np.empty(0)

    def update(self, groups: np.ndarray) -> ShamosScale:
        groups = np.asarray(groups, dtype=np.float64)
        n, _, k = groups.shape
        a, b = zip(*combinations(range(k), 2), strict=True) if k > 1 else ((), ())
        diffs = np.abs(groups[:, :, list(a)] - groups[:, :, list(b)]).reshape(n, -1)
        ok = np.count_nonzero(~np.isnan(diffs), axis=1) >= max(self.min_pairs, 1)
        self.scale = np.full(n, np.nan)
        if ok.any():
            self.scale[ok] = np.maximum(SHAMOS_TO_SIGMA * np.nanmedian(diffs[ok], axis=1), self.min_scale)
        return self

    def get(self) -> np.ndarray:
        """σ per row; NaN where there were too few pairs."""
        return self.scale
