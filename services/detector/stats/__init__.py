"""Online statistics, vectorised over an area's meters.

River-style: one statistic per module, ``update(x)`` returns the statistic,
``get()`` its value. Unlike River each instance holds one value per meter
(numpy arrays, updated in place) so a detector updates a whole area with a
handful of array operations and its state is those arrays. Batch helpers
that need a window already in memory (correlation) are plain functions.
"""

from services.detector.stats.correlation import pearson, spearman
from services.detector.stats.cusum import Cusum
from services.detector.stats.ewm import EWMeanVar
from services.detector.stats.ramp import ramp
from services.detector.stats.ring import DayRing
from services.detector.stats.robust import MAD_TO_SIGMA, RobustZ
from services.detector.stats.shamos import SHAMOS_TO_SIGMA, ShamosScale

__all__ = [
    "Cusum",
    "DayRing",
    "EWMeanVar",
    "MAD_TO_SIGMA",
    "RobustZ",
    "SHAMOS_TO_SIGMA",
    "ShamosScale",
    "pearson",
    "ramp",
    "spearman",
]
