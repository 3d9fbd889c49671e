"""Exponentially weighted mean and variance, one value per meter.

A meter's "normal" drifts with the seasons; an exponentially weighted
estimate follows that drift with O(1) state (two numbers per meter) where a
window would need the whole window. The update is the incremental form of
West (1979) as written by Finch (2009), vectorised over an area's meters so
one call updates them all.
"""

from __future__ import annotations

import numpy as np

__all__ = ["EWMeanVar"]


class EWMeanVar:
    """Exponentially weighted mean and variance of an array of streams.

    Parameters
    ----------
    mean, var
        Arrays of the same shape (one cell per stream, e.g. per meter or
        per meter × hour), updated in place so they can live in a detector's
        state. NaN in ``mean`` marks a stream that has seen nothing yet.
        ``var=None`` keeps the mean only (half the state, e.g. a usual
        hourly profile whose spread nobody reads).
    alpha
        Weight of the newest value, in (0, 1]; the memory is about
        ``1 / alpha`` updates.

    For each stream, with ``d = x - mean``::

        mean <- mean + alpha * d
        var  <- (1 - alpha) * (var + alpha * d**2)

    The first value initialises ``mean = x, var = 0``. NaN values (a meter
    that did not report) leave their stream unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> ew = EWMeanVar.empty((1,), alpha=0.5, dtype=np.float64)
    >>> for x in [1, 3, 5, 4, 6, 8, 7, 9, 11]:
    ...     mean, var = ew.update(np.array([x])).get()
    ...     print(f"{mean[0]:.4f} {var[0]:.6f}")
    1.0000 0.000000
    2.0000 1.000000
    3.5000 2.750000
    3.7500 1.437500
    4.8750 1.984375
    6.4375 3.433594
    6.7188 1.795898
    7.8594 2.198975
    9.4297 3.565369

    NaN skips a stream, the other streams move on:

    >>> ew = EWMeanVar.empty((2,), alpha=0.5, dtype=np.float64)
    >>> ew.update(np.array([2.0, 4.0])).update(np.array([np.nan, 8.0])).get()[0]
    array([2., 6.])

    References
    ----------
    West, D.H.D. (1979). Updating mean and variance estimates: an improved
    method. Communications of the ACM 22(9), 532-535.
    Finch, T. (2009). Incremental calculation of weighted mean and variance.
    University of Cambridge Computing Service.
    """

    __slots__ = ("mean", "var", "alpha")

    def __init__(self, mean: np.ndarray, var: np.ndarray | None, alpha: float) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.mean = mean
        self.var = var
        self.alpha = float(alpha)

    @classmethod
    def empty(
        cls, shape: tuple[int, ...], alpha: float, dtype: np.dtype | type = np.float32
    ) -> EWMeanVar:
        """A fresh estimator whose streams have seen nothing."""
        return cls(np.full(shape, np.nan, dtype), np.zeros(shape, dtype), alpha)

    def update(self, x: np.ndarray) -> EWMeanVar:
        x = np.asarray(x, dtype=self.mean.dtype)
        seen = ~np.isnan(x)
        first = seen & np.isnan(self.mean)
        self.mean[first] = x[first]
        step = seen & ~first
        d = x[step] - self.mean[step]
        self.mean[step] += self.alpha * d
        if self.var is not None:
            self.var[first] = 0.0
            self.var[step] = (1.0 - self.alpha) * (self.var[step] + self.alpha * d * d)
        return self

    def get(self) -> tuple[np.ndarray, np.ndarray | None]:
        """``(mean, var)``; NaN mean for streams never updated."""
        return self.mean, self.var
