"""The simulation's clock: days of fixed intervals, stamped at the interval end.

Every array in the simulator is indexed by a *global interval index* ``g``
(``day * points_per_day + k``); the reading of ``g`` is stamped at the end
of its interval, ``start + (g + 1) * interval`` (the collection system's
convention, see schemas/README.md). Timestamps are formatted once and
cached, because millions of readings share a few thousand instants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

__all__ = ["TimeGrid", "iso", "parse_date"]

_ISO_CACHE: dict[int, str] = {}


def iso(epoch_s: int) -> str:
    """``2026-01-05T00:15:00Z`` for a whole-second UTC epoch (cached)."""
    text = _ISO_CACHE.get(epoch_s)
    if text is None:
        text = datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if len(_ISO_CACHE) > 2_000_000:
            _ISO_CACHE.clear()
        _ISO_CACHE[epoch_s] = text
    return text


def parse_date(text: str) -> date:
    """A ``YYYY-MM-DD`` command-line date."""
    return date.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class TimeGrid:
    """``days`` days of ``interval_minutes`` intervals from midnight UTC of ``start``."""

    start: date
    days: int
    interval_minutes: int
    start_epoch: int = field(init=False)

    def __post_init__(self) -> None:
        if 1440 % self.interval_minutes:
            raise ValueError(f"interval {self.interval_minutes} min does not divide a day")
        if self.days < 1:
            raise ValueError("a simulation needs at least one day")
        epoch = int(datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC).timestamp())
        object.__setattr__(self, "start_epoch", epoch)

    @property
    def points_per_day(self) -> int:
        return 1440 // self.interval_minutes

    @property
    def interval_s(self) -> int:
        return self.interval_minutes * 60

    @property
    def dt_h(self) -> float:
        """Interval length in hours: kW × dt_h = kWh."""
        return self.interval_minutes / 60.0

    @property
    def total(self) -> int:
        """Number of intervals in the run."""
        return self.days * self.points_per_day

    def ts_epoch(self, g: int) -> int:
        """Epoch seconds of the end of interval ``g``."""
        return self.start_epoch + (g + 1) * self.interval_s

    def ts(self, g: int) -> str:
        """ISO timestamp of the end of interval ``g``."""
        return iso(self.ts_epoch(g))

    def date_of_day(self, day: int) -> date:
        return self.start + timedelta(days=day)

    def hours(self) -> list[float]:
        """Hour of day at the *middle* of each interval, the time a load profile is evaluated at."""
        step = self.interval_minutes / 60.0
        return [(k + 0.5) * step for k in range(self.points_per_day)]
