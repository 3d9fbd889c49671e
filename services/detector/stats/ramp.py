"""From evidence to a score in [0, 1]: a clipped linear ramp.

Every alert carries a score operators rank by, and the theft score
combines several signals; each signal must therefore map onto [0, 1] the
same simple, explainable way: nothing below ``start``, everything from
``full`` on, linear in between (a piecewise-linear membership function,
Zadeh 1965). Single-rule findings score with
``services.detector.findings.exceed_score`` instead.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ramp"]


def ramp(x: np.ndarray | float, start: float, full: float) -> np.ndarray:
    """``clip((x - start) / (full - start), 0, 1)``; ``full < start`` ramps downwards; NaN → 0.

    >>> ramp([0.0, 0.5, 1.0, 2.0], start=0.5, full=1.5)
    array([0. , 0. , 0.5, 1. ])
    >>> ramp([0.0, 0.3, 0.6], start=0.6, full=0.0)   # the lower, the stronger
    array([1. , 0.5, 0. ])

    References: Zadeh, L.A. (1965). Fuzzy sets. Information and Control
    8(3), 338-353.
    """
    y = (np.asarray(x, dtype=np.float64) - start) / (full - start)
    return np.nan_to_num(np.clip(y, 0.0, 1.0), nan=0.0) + 0.0  # + 0.0 turns -0.0 into 0.0

