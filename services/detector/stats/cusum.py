"""One-sided CUSUM: evidence of a lasting downward shift, per meter.

A single low day is noise; a level that stays low is a drop. Page's
cumulative sum adds each day's standardized deficit beyond an allowance
``k`` and forgets everything once the meter is back to normal, so it
raises slowly on small lasting shifts and not at all on isolated dips.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Cusum"]


class Cusum:
    """One-sided (upper) CUSUM of a standardized series, vectorised.

    Parameters
    ----------
    s
        Array of statistics, one per meter, updated in place (lives in a
        detector's state); start at 0.
    k
        Reference value (allowance) in units of σ: about half the shift
        one wants to detect. Values below ``k`` pull the sum back to 0.

    Feeding the standardized *deficit* ``z = (baseline - x) / scale``
    makes the upper CUSUM of z the lower CUSUM of x::

        S_t = max(0, S_{t-1} + z_t - k)

    The caller compares ``S`` with its decision interval ``h``. NaN z (no
    data that day) leaves S unchanged: a gap neither raises nor clears it.

    Examples
    --------
    >>> import numpy as np
    >>> cs = Cusum(np.zeros(1), k=0.5)
    >>> for z in [0.2, 3.0, 3.0, np.nan, 3.0, -1.0, -4.0]:
    ...     print(cs.update(np.array([z])).get()[0])
    0.0
    2.5
    5.0
    5.0
    7.5
    6.0
    1.5

    References
    ----------
    Page, E.S. (1954). Continuous inspection schemes. Biometrika 41(1/2),
    100-115.
    """

    __slots__ = ("s", "k")

    def __init__(self, s: np.ndarray, k: float) -> None:
        self.s = s
        self.k = float(k)

    def update(self, z: np.ndarray) -> Cusum:
        z = np.asarray(z, dtype=self.s.dtype)
        seen = ~np.isnan(z)
        self.s[seen] = np.maximum(0.0, self.s[seen] + z[seen] - self.k)
        return self

    def get(self) -> np.ndarray:
        return self.s
