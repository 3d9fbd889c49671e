"""Area energy balance: daily and hourly line loss, its trailing series, and who explains it.

Plain functions and small classes; the consumption family
(``services/detector/detectors/consumption.py``) calls them once per
closed day and keeps the series in the area's state.
"""

from services.detector.balance.attribution import NO_METERED_CUSTOMER, TOO_EARLY, Attribution, evidence, explain, rise
from services.detector.balance.loss import DayBalance, LossLimits, day_balance
from services.detector.balance.series import LossSeries

__all__ = [
    "NO_METERED_CUSTOMER",
    "TOO_EARLY",
    "Attribution",
    "DayBalance",
    "LossLimits",
    "LossSeries",
    "day_balance",
    "evidence",
    "explain",
    "rise",
]
