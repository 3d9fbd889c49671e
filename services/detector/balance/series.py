"""The area's trailing series of daily loss, kept in its state.

Attribution asks which meter's deficit moved with the area's loss over the
last weeks, and an area alert shows the loss trend; both need the recent
days, not one. Two rings of ``K`` days (loss rate and supplied energy,
float32, area-level: 8·K bytes per area, nothing per meter) aligned by day
number with every other day ring, so column ``d % K`` is day ``d``
everywhere.
"""

from __future__ import annotations

import numpy as np

from services.detector.state import Arrays
from services.detector.stats.ring import DayRing

__all__ = ["LossSeries"]


class LossSeries:
    """Daily loss rate and supplied energy of the last ``K`` days (NaN: not computable).

    >>> import numpy as np
    >>> s = LossSeries.of(LossSeries.init_state(k=7))
    >>> s.record(day_no=10, loss_rate=0.04, supplied_kwh=500.0)
    >>> s.record(day_no=12, loss_rate=float("nan"), supplied_kwh=480.0)
    >>> s.rates()[-3:].round(3)
    array([0.04,  nan,  nan])
    >>> s.record(day_no=13, loss_rate=0.04, supplied_kwh=510.0)
    >>> s.record(day_no=14, loss_rate=0.08, supplied_kwh=500.0)   # 20 kWh above the usual 4 %
    >>> s.excess_kwh()[-5:].round(3)
    array([ 0., nan, nan,  0., 20.])
    """

    __slots__ = ("rate", "supplied")

    def __init__(self, rate: DayRing, supplied: DayRing) -> None:
        self.rate = rate
        self.supplied = supplied

    @staticmethod
    def init_state(k: int) -> Arrays:
        """Area-level arrays (keys start with ``area_``) for a fresh series."""
        return {
            "area_loss_rate": np.full((1, k), np.nan, np.float32),
            "area_loss_supplied_kwh": np.full((1, k), np.nan, np.float32),
            "area_loss_rate_day": np.full(1, -1, np.int64),
            "area_loss_supplied_day": np.full(1, -1, np.int64),
        }

    @classmethod
    def of(cls, state: Arrays) -> LossSeries:
        """The series living in ``state`` (updated in place)."""
        return cls(
            DayRing(state["area_loss_rate"], state["area_loss_rate_day"]),
            DayRing(state["area_loss_supplied_kwh"], state["area_loss_supplied_day"]),
        )

    def record(self, day_no: int, loss_rate: float, supplied_kwh: float) -> None:
        """One day's balance; an uncomputable day's rate is NaN, never a guess."""
        self.rate.update(np.array([loss_rate]), day_no)
        self.supplied.update(np.array([supplied_kwh]), day_no)

    def rates(self) -> np.ndarray:
        """``[K]`` daily loss rates, oldest first."""
        return self.rate.get()[0].astype(np.float64)

    def excess_kwh(self) -> np.ndarray:
        """``[K]`` loss energy above the area's usual rate: ``(rate − median rate) × supplied``.

        Technical loss moves with the load; removing the part the area's
        usual rate explains leaves what a theft or a tap adds, so a meter's
        deficit is compared with the loss it could have caused, not with
        the weather.
        """
        rates = self.rates()
        if np.isnan(rates).all():
            return rates
        return (rates - np.nanmedian(rates)) * self.supplied.get()[0]
