"""Robust location and scale (median, MAD) and the robust z-score.

A meter's own history contains the very anomalies we look for (a holiday,
a broken day, last month's theft). The median and the median absolute
deviation ignore up to half of the window being odd, where mean and
standard deviation would be dragged along; 1.4826 · MAD estimates the
standard deviation of normal data (Rousseeuw & Croux 1993).
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAD_TO_SIGMA", "RobustZ"]

#: 1 / Φ⁻¹(3/4): makes the MAD a consistent estimator of σ for normal data.
MAD_TO_SIGMA = 1.4826


class RobustZ:
    """Median / MAD baseline of a window per meter, and robust z against it.

    Parameters
    ----------
    min_count
        Fewest non-NaN values a window needs; with fewer the baseline is
        NaN ("not enough history"), so no score is produced.
    min_scale
        Floor of the scale, in the unit of the values: a meter whose
        history is nearly constant must not turn noise into a huge z.

    ``update(window)`` takes ``[n, k]`` values (NaN = missing, e.g. the
    same-weekday columns of a :class:`~services.detector.stats.ring.DayRing`)
    and recomputes, per row::

        median = med(w)
        scale  = max(1.4826 · med(|w - median|), min_scale)
        z(x)   = (x - median) / scale

    Examples
    --------
    >>> import numpy as np
    >>> window = np.array([[10, 11, 9, 10, 30.0],      # one outlier in history
    ...                    [5, np.nan, np.nan, np.nan, np.nan]])
    >>> rz = RobustZ(min_count=3, min_scale=0.1).update(window)
    >>> median, scale = rz.get()
    >>> median, scale.round(4)
    (array([10., nan]), array([1.4826,    nan]))
    >>> rz.score(np.array([4.0, 5.0])).round(2)
    array([-4.05,   nan])

    References
    ----------
    Hampel, F.R. (1974). The influence curve and its role in robust
    estimation. JASA 69(346), 383-393.
    Rousseeuw, P.J., Croux, C. (1993). Alternatives to the median absolute
    deviation. JASA 88(424), 1273-1283.
    """

    __slots__ = ("min_count", "min_scale", "median", "scale")

    def __init__(self, min_count: int, min_scale: float) -> None:
        self.min_count = int(min_count)
        self.min_scale = float(min_scale)
        self.median = np.empty(0)
        self.scale = np.empty(0)

    def update(self, window: np.ndarray) -> RobustZ:
        window = np.asarray(window, dtype=np.float64)
        n = window.shape[0]
        self.median = np.full(n, np.nan)
        self.scale = np.full(n, np.nan)
        ok = np.count_nonzero(~np.isnan(window), axis=1) >= max(self.min_count, 1)
        if ok.any():
            w = window[ok]
            med = np.nanmedian(w, axis=1)
            mad = np.nanmedian(np.abs(w - med[:, None]), axis=1)
            self.median[ok] = med
            self.scale[ok] = np.maximum(MAD_TO_SIGMA * mad, self.min_scale)
        return self

    def get(self) -> tuple[np.ndarray, np.ndarray]:
        """``(median, scale)`` per row; NaN where history is too short."""
        return self.median, self.scale

    def score(self, x: np.ndarray) -> np.ndarray:
        """Robust z of ``x`` (one value per row) against the baseline."""
        return (np.asarray(x, dtype=np.float64) - self.median) / self.scale
