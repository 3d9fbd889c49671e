"""Row-wise Pearson and Spearman correlation over aligned series, NaN-aware.

Two detectors ask "do these two series move together?" for every meter of
an area at once: a meter's daily deficit against the area's loss energy
(the stolen energy appears in both), and a meter's day profile against its
own usual profile (a reversed or randomised profile stops matching). Both
series are already in memory as windows, so this is a batch computation
over the last axis, one matrix operation for a whole area; pairs where
either side is NaN are dropped per row.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

__all__ = ["pearson", "spearman"]


def pearson(a: np.ndarray, b: np.ndarray, min_pairs: int = 3) -> np.ndarray:
    """Pearson's r along the last axis, broadcasting ``a`` against ``b``.

    ``r = Σ(a-ā)(b-b̄) / sqrt(Σ(a-ā)² Σ(b-b̄)²)`` over the pairs where both
    are present. NaN where fewer than ``min_pairs`` pairs remain or a side
    is constant (no variation, no evidence either way).

    >>> import numpy as np
    >>> a = np.array([[1.0, 2, 3, 4], [1, 2, np.nan, 4], [1, 1, 1, 1]])
    >>> pearson(a, np.array([2.0, 4, 6, 9])).round(3)
    array([0.994, 0.999,   nan])

    References: Pearson, K. (1895). Notes on regression and inheritance in
    the case of two parents. Proc. Royal Society of London 58, 240-242.
    """
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    both = ~(np.isnan(a) | np.isnan(b))
    n = both.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        a0 = np.where(both, a, 0.0)
        b0 = np.where(both, b, 0.0)
        da = np.where(both, a0 - (a0.sum(axis=-1) / n)[..., None], 0.0)
        db = np.where(both, b0 - (b0.sum(axis=-1) / n)[..., None], 0.0)
        den = np.sqrt((da * da).sum(axis=-1) * (db * db).sum(axis=-1))
        r = (da * db).sum(axis=-1) / den
    return np.where((n >= min_pairs) & (den > 1e-12), np.clip(r, -1.0, 1.0), np.nan)


def spearman(a: np.ndarray, b: np.ndarray, min_pairs: int = 3) -> np.ndarray:
    """Spearman's ρ: Pearson's r of the ranks (ties averaged), per row.

    Insensitive to the size of a spike, it says whether the order matches.

    >>> import numpy as np
    >>> a = np.array([[1.0, 2, 3, 40], [4, 3, 2, 1]])
    >>> spearman(a, np.array([1.0, 2, 3, 4]))
    array([ 1., -1.])

    References: Spearman, C. (1904). The proof and measurement of
    association between two things. Am. J. Psychology 15(1), 72-101.
    """
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    gone = np.isnan(a) | np.isnan(b)
    ra = rankdata(np.where(gone, np.nan, a), axis=-1, nan_policy="omit")
    rb = rankdata(np.where(gone, np.nan, b), axis=-1, nan_policy="omit")
    return pearson(ra, rb, min_pairs)
