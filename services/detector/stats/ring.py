"""The last K daily values of every meter, in a fixed-size ring.

Robust baselines (median, MAD, same weekday) need the recent values
themselves, not a summary. A ring indexed by day number keeps them in
``K`` cells per meter whatever the age of the stream: day ``d`` lives in
column ``d % K``, so "same weekday" is a fixed set of columns when ``K`` is
a multiple of 7, and a day that never arrived is NaN, never a stale value
from ``K`` days earlier.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DayRing"]


class DayRing:
    """Ring buffer of ``K`` daily values per meter, NaN-aware.

    Parameters
    ----------
    values
        ``[n_meters, K]`` array updated in place (lives in a detector's
        state); NaN marks an empty cell.
    last_day
        One-element integer array: the day number written last (-1 before
        the first write). It is per area, not per meter: all meters of an
        area close their days together.

    ``update(x, day)`` writes day ``day``; days skipped since the last write
    are blanked. ``get()`` returns the ring oldest first, ``days(...)``
    any days by number. A day older than the ring, or older than the last write by
    K or more, is ignored (a late correction cannot rewrite history the ring
    no longer holds).

    Examples
    --------
    >>> import numpy as np
    >>> ring = DayRing.empty(n=2, k=7, dtype=np.float64)
    >>> for day, x in enumerate([[1, 10], [2, 20], [3, np.nan]]):
    ...     _ = ring.update(np.array(x, dtype=float), day)
    >>> ring.get()[:, -3:]
    array([[ 1.,  2.,  3.],
           [10., 20., nan]])
    >>> _ = ring.update(np.array([9.0, 90.0]), 5)   # days 3 and 4 never came
    >>> ring.get()[:, -4:]
    array([[ 3., nan, nan,  9.],
           [nan, nan, nan, 90.]])
    >>> ring.days([-2, 0, 5, 12])   # day -2 never came, day 12 not yet
    array([[nan,  1.,  9., nan],
           [nan, 10., 90., nan]])
    """

    __slots__ = ("values", "last_day")

    def __init__(self, values: np.ndarray, last_day: np.ndarray) -> None:
        self.values = values
        self.last_day = last_day

    @classmethod
    def empty(cls, n: int, k: int, dtype: np.dtype | type = np.float32) -> DayRing:
        return cls(np.full((n, k), np.nan, dtype), np.full(1, -1, np.int64))

    @property
    def k(self) -> int:
        return self.values.shape[1]

    def update(self, x: np.ndarray, day: int) -> DayRing:
        last = int(self.last_day[0])
        if last >= 0 and day <= last - self.k:
            return self
        if day > last:
            # Blank the columns of days that never arrived (at most K of them).
            for skipped in range(max(last + 1, day - self.k + 1), day):
                self.values[:, skipped % self.k] = np.nan
            self.last_day[0] = day
        self.values[:, day % self.k] = x
        return self

    def get(self) -> np.ndarray:
        """``[n, K]`` values, oldest day first, newest last."""
        return np.roll(self.values, -(int(self.last_day[0]) + 1) % self.k, axis=1)

    def days(self, day_numbers: range | list[int]) -> np.ndarray:
        """``[n, len(day_numbers)]`` values of those days, NaN for days the ring does not hold.

        Lets a caller line up windows by day number whatever was skipped,
        e.g. the 28 days before today, or the same weekday of past weeks.
        """
        last = int(self.last_day[0])
        held = [last - self.k < d <= last for d in day_numbers]
        out = self.values[:, [d % self.k for d in day_numbers]]
        out[:, ~np.asarray(held, dtype=bool)] = np.nan
        return out
