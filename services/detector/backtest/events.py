"""Meter events of a backtest (``--events FILE``), handed to each meter with its next reading.

The file is a CSV with ``meter_id``, ``at`` (ISO 8601, the meter's own
clock as the head-end reports it) and ``code`` (the contract's event codes:
``cover_open``, ``terminal_cover_open``, ``magnetic_field``, ``voltage_loss``,
``current_loss``, ``power_outage``, ``power_restored``, ``clock_error``,
``meter_replaced``) and optionally ``ts``, the interval end of the reading
that reported the event; other columns are ignored. A meter reports its
events with a reading, so each event rides on the meter's first reading
stamped at or after its ``ts`` or, without one, its ``at`` (the interval
it happened in by the meter's clock, unless that reading is missing; a
meter whose clock is off reports events in another interval, which only
``ts`` can say). Events after a meter's last reading have nothing to ride
on and are counted as dropped.
"""

from __future__ import annotations

import csv
from collections import deque
from pathlib import Path

from services.detector.backtest.table import iso_ts
from services.detector.eventtime import parse_ts

__all__ = ["MeterEvents"]


class MeterEvents:
    """Pending events per meter, in time order."""

    __slots__ = ("_pending", "total")

    def __init__(self, events: dict[str, list[tuple[int, dict[str, str]]]]) -> None:
        self._pending = {m: deque(sorted(evs, key=lambda e: e[0])) for m, evs in events.items()}
        self.total = sum(len(evs) for evs in events.values())

    @classmethod
    def load(cls, path: Path | None) -> MeterEvents:
        """Read ``path`` (None: no events)."""
        events: dict[str, list[tuple[int, dict[str, str]]]] = {}
        if path is None:
            return cls(events)
        with path.open(newline="", encoding="utf-8-sig") as fh:
            for n, row in enumerate(csv.DictReader(fh), start=2):
                try:
                    at = iso_ts(row["at"])
                    due = parse_ts(iso_ts(row["ts"])) if row.get("ts") else parse_ts(at)
                    events.setdefault(row["meter_id"], []).append((due, {"code": row["code"], "at": at}))
                except (KeyError, TypeError, ValueError) as exc:
                    raise ValueError(f"{path}, row {n}: needs meter_id, at (a timestamp) and code ({exc})") from None
        return cls(events)

    def due(self, meter_id: str, ts: int) -> list[dict[str, str]]:
        """The meter's pending events at or before ``ts`` (removed)."""
        pending = self._pending.get(meter_id)
        out = []
        while pending and pending[0][0] <= ts:
            out.append(pending.popleft()[1])
        return out

    def dropped(self) -> int:
        """Events no reading took."""
        return sum(len(p) for p in self._pending.values())
