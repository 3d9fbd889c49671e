"""Event time as the contracts define it: ISO 8601 UTC strings ↔ integer epoch seconds.

Detectors run on event time only (never the wall clock), so replay, backtest
and the live stream agree. Interval data is stamped at the interval's *end*
(schemas/README.md): the point stamped 00:00 is the energy of 23:45–24:00 and
belongs to the previous day. Days are UTC days; a deployment in another zone
shifts its day boundary by feeding frames whose timestamps are already local
(not needed for the simulator, which works in UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["DAY_S", "parse_ts", "format_ts", "day_start_of_interval"]

DAY_S = 86_400


def parse_ts(value: str) -> int:
    """Epoch seconds of an ISO 8601 timestamp (``...Z`` or with an offset)."""
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def format_ts(ts: int) -> str:
    """The contract's form of an epoch second: ``2026-01-05T00:15:00Z``."""
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_start_of_interval(ts_end: int) -> int:
    """Start (epoch s, UTC midnight) of the day an end-stamped interval belongs to."""
    return ((int(ts_end) - 1) // DAY_S) * DAY_S
