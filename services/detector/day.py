"""DayView: one closed day of an area, the input of every per-day rule.

A day is a UTC day of end-stamped intervals (``eventtime``): the interval
stamped 00:00 closes the previous day. The pipeline closes a day when the
first frame of a later day arrives and hands each detector this view; it is
read-only and built once per day for all detectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np

from services.detector.eventtime import DAY_S
from services.detector.frame import MeterEvent

__all__ = ["DayView"]


@dataclass(frozen=True, slots=True, eq=False)
class DayView:
    """A closed day: per-meter interval matrix and daily aggregates, the area meter's series, the day's events.

    Per-meter arrays are aligned with ``meter_ids`` (the archive order).
    ``energy`` is [n, intervals_per_day] kWh with NaN for an interval without
    energy (no reading, or a register-only reading that could not be
    differenced). ``daily_kwh`` is the sum of the known intervals (NaN when
    none); compare it with ``energy_intervals`` before trusting it as a full day.
    ``complete`` is False when the area's stream did not cover the whole day
    (the day the state started in, a day flushed before its end): rules about
    what did not arrive should not judge such a day.
    """

    area_id: str
    day_start: int
    interval_minutes: int
    complete: bool
    meter_ids: tuple[str, ...]
    energy: np.ndarray  # float32 [n, ipd]
    daily_kwh: np.ndarray  # float64 [n]
    reported: np.ndarray  # int32 [n]: intervals with a reading (any field)
    energy_intervals: np.ndarray  # int32 [n]: intervals with known energy
    max_demand_kw: np.ndarray  # float32 [n], NaN without demand readings
    mean_pf: np.ndarray  # float32 [n], energy-weighted mean power factor, NaN without
    phase_current_a: np.ndarray  # float32 [n, 3], mean per phase over readings, NaN without
    power_kwh: np.ndarray  # float32 [n]: Σ of the energy the instantaneous values imply, over intervals with both...
    power_energy_kwh: np.ndarray  # float32 [n]: ...and Σ of the energy over the same intervals (0: none)
    area_energy: np.ndarray  # float32 [ipd], the area meter's intervals
    area_daily_kwh: float  # sum of the area meter's known intervals, NaN when none
    area_energy_intervals: int
    events: tuple[MeterEvent, ...]
    seen: np.ndarray | None = None  # bool [n, ipd]: which intervals had a reading (any field); None: not known

    @property
    def end(self) -> int:
        """The day's end (next midnight, epoch s): the event time of per-day findings."""
        return self.day_start + DAY_S

    @property
    def date(self) -> date:
        """The UTC calendar date."""
        return datetime.fromtimestamp(self.day_start, UTC).date()

    @property
    def weekday(self) -> int:
        """Monday = 0 … Sunday = 6."""
        return self.date.weekday()

    @property
    def intervals_per_day(self) -> int:
        """Columns of ``energy``."""
        return self.energy.shape[1]

    def events_of(self, codes: tuple[str, ...]) -> list[MeterEvent]:
        """The day's events whose code is one of ``codes``."""
        return [e for e in self.events if e.code in codes]
