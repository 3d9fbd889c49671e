"""One pass over a readings file before the replay: its order, its interval, its areas and meters.

The replay feeds readings to ingest as a head-end would deliver them: in
time order. A file already in time order (``amiwatch simulate``'s export is)
streams; any other file is sorted in memory first, which the command says.
The interval is the smallest step between the file's timestamps unless
``--granularity`` gives it. The meters per area (and whether a meter ever
reports phase b or c) make the default archive when none is given.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from services.detector.backtest.table import Row
from services.detector.eventtime import parse_ts

__all__ = ["DEFAULT_AREA", "Survey", "survey", "area_of"]

DEFAULT_AREA = "all"
"""The area of readings that name none, when no archive places their meter."""

_PHASE_BC = ("voltage_b", "voltage_c", "current_b", "current_c")


def area_of(row: Row, meter_areas: dict[str, str]) -> str:
    """The row's area: its own column, else the archive's, else :data:`DEFAULT_AREA`."""
    return row.area or meter_areas.get(row.meter) or DEFAULT_AREA


@dataclass(slots=True)
class Survey:
    """What the pre-pass learnt."""

    rows: int = 0
    in_order: bool = True
    first_ts: str | None = None
    stamps: set[int] = field(default_factory=set)
    meters: dict[str, dict[str, bool]] = field(default_factory=dict)  # area → meter → reported phase b/c

    def interval_minutes(self) -> int | None:
        """The smallest step between distinct timestamps, in minutes (None with fewer than two)."""
        ordered = sorted(self.stamps)
        steps = [b - a for a, b in zip(ordered, ordered[1:], strict=False) if b > a]
        return min(steps) // 60 if steps else None


def survey(rows: Iterable[Row], meter_areas: dict[str, str], area_meters: dict[str, str]) -> Survey:
    """Survey ``rows``; ``area_meters`` (meter id → area) are left out of the customer meters."""
    out = Survey()
    epoch: dict[str, int] = {}
    last = -1
    for row in rows:
        out.rows += 1
        ts = epoch.get(row.ts)
        if ts is None:
            ts = epoch[row.ts] = parse_ts(row.ts)
            out.stamps.add(ts)
        if ts < last:
            out.in_order = False
        else:
            last = ts
        if row.meter in area_meters:
            continue
        meters = out.meters.setdefault(area_of(row, meter_areas), {})
        three = meters.get(row.meter, False) or any(f in row.values for f in _PHASE_BC)
        meters[row.meter] = three
    if out.stamps:
        out.first_ts = min(epoch, key=epoch.__getitem__)
    return out
