"""One raw reading → one canonical reading: kWh, aligned interval end, clock offset, phase columns.

Pure functions of a reading and the fields it inherits from its message (ts,
interval, unit, area), so a replay after a restart normalises every reading
exactly as the first pass did. Nothing here knows about archives or Kafka.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

__all__ = [
    "COLUMNS",
    "ALIGN_TOLERANCE",
    "Misaligned",
    "Reading",
    "parse_time",
    "format_time",
    "align",
    "normalise",
    "Phases",
    "phases",
    "reading",
]

COLUMNS: tuple[str, ...] = (
    "energy_kwh",
    "register_fwd_kwh",
    "register_rev_kwh",
    "voltage_a_v",
    "voltage_b_v",
    "voltage_c_v",
    "current_a_a",
    "current_b_a",
    "current_c_a",
    "power_factor",
    "demand_kw",
    "clock_offset_s",
)
"""The frame's value columns, in the order of :attr:`Reading.values`."""

ALIGN_TOLERANCE = 0.1
"""A stamp may be this fraction of the interval off its boundary (contract: 10 %)."""


class Misaligned(ValueError):
    """A timestamp too far from any interval end to say which interval it means."""


class Reading:
    """One meter's normalised reading for one interval, ready for a frame.

    ``ts`` is the aligned interval end (epoch s). ``values`` follows
    :data:`COLUMNS`. ``index`` is the reading's position in a concentrator
    upload's ``readings`` (None for the area meter and for single-reading
    messages): it names the reading in a dead letter and, as :attr:`slot`,
    in the checkpoint's record of rejected readings.
    """

    __slots__ = ("area_id", "meter_id", "ts", "interval_minutes", "is_area_meter", "values", "events", "index")

    def __init__(
        self,
        area_id: str,
        meter_id: str,
        ts: int,
        interval_minutes: int,
        is_area_meter: bool,
        values: tuple[float | None, ...],
        events: tuple[tuple[str, str], ...],
        index: int | None,
    ) -> None:
        self.area_id = area_id
        self.meter_id = meter_id
        self.ts = ts
        self.interval_minutes = interval_minutes
        self.is_area_meter = is_area_meter
        self.values = values
        self.events = events
        self.index = index

    @property
    def slot(self) -> int:
        """Where the reading sits in its message: its upload index, else -1 (a message has one such reading)."""
        return -1 if self.index is None else self.index

    @property
    def frame_key(self) -> tuple[str, int, int]:
        """(area, interval end, interval minutes): the frame this reading belongs to."""
        return (self.area_id, self.ts, self.interval_minutes)

    def __repr__(self) -> str:
        return f"Reading({self.area_id}, {self.meter_id}, {format_time(self.ts)}, {self.values})"


@lru_cache(maxsize=1 << 16)
def parse_time(text: str) -> float:
    """Epoch seconds of a contract timestamp (``...Z``, optional fraction).

    Raises ValueError for a string that matches the contract's pattern but is
    no calendar date (``2026-02-30``), which a regex cannot rule out. Cached
    (a fleet's stamps repeat: every meter reports the same interval ends, and
    meter clocks differ by seconds); a failure is not cached and raises again.
    """
    return datetime.fromisoformat(text).timestamp()


@lru_cache(maxsize=4096)
def format_time(ts: int) -> str:
    """The contract's form of an epoch second, ``2026-01-05T00:15:00Z`` (cached: frames reuse few stamps)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def align(t: float, interval_minutes: int) -> int:
    """The interval end nearest to ``t`` (epoch s), or :class:`Misaligned` if ``t`` is > 10 % off it.

    Intervals are aligned to the UTC epoch, so daily values end at UTC midnight.
    """
    step = interval_minutes * 60
    end = round(t / step) * step
    if abs(t - end) > ALIGN_TOLERANCE * step:
        raise Misaligned(
            f"{format_time(int(t))} is {abs(t - end):.0f} s from the nearest {interval_minutes}-minute boundary"
        )
    return int(end)


Phases = tuple[float | None, float | None, float | None]
"""Phase a, b, c of a voltage or current, None where not measured."""


def phases(values: dict[str, float] | None) -> Phases:
    """The (a, b, c) of a reading's phase object (absent → all None)."""
    if values is None:
        return (None, None, None)
    a, b, c = values.get("a"), values.get("b"), values.get("c")
    return (None if a is None else float(a), None if b is None else float(b), None if c is None else float(c))


def _date(field: str, text: str) -> float:
    try:
        return parse_time(text)
    except ValueError:
        raise ValueError(f"{field}: {text!r} is not a calendar date and time") from None


def normalise(item: dict[str, Any], **context: Any) -> Reading:
    """The canonical :class:`Reading` of a schema-valid reading ``item``; ``context`` is the
    keyword arguments of :func:`reading` (what the item inherits from its message)."""
    get = item.get
    return reading(
        item["meter_id"],
        get("energy"),
        get("register_fwd"),
        get("register_rev"),
        phases(get("voltage")),
        phases(get("current")),
        get("power_factor"),
        get("demand_kw"),
        get("meter_time"),
        tuple((e["code"], e["at"]) for e in item["events"]) if "events" in item else (),
        **context,
    )


def reading(
    meter_id: str,
    energy: float | None,
    fwd: float | None,
    rev: float | None,
    voltage: Phases,
    current: Phases,
    power_factor: float | None,
    demand: float | None,
    meter_time: str | None,
    events: tuple[tuple[str, str], ...],
    *,
    area_id: str,
    ts: int,
    stamp: float,
    interval_minutes: int,
    unit: str,
    is_area_meter: bool,
    index: int | None,
) -> Reading:
    """The canonical :class:`Reading` of a schema-valid reading's fields, whichever way they were parsed.

    ``ts`` is the aligned interval end and ``stamp`` the raw stamp it was
    aligned from: the clock offset is ``meter_time − stamp``, the meter's
    clock against the head-end's at read time. Energies and registers in
    ``Wh`` are divided by 1000 (and rounded to 1e-9 kWh, so 420 Wh and
    0.42 kWh are the same float and a re-send in the other unit is a
    duplicate). Raises ValueError for a ``meter_time`` or event time that
    matches the contract's pattern but is no calendar date.
    """
    if unit == "Wh":
        energy = None if energy is None else round(energy / 1000, 9)
        fwd = None if fwd is None else round(fwd / 1000, 9)
        rev = None if rev is None else round(rev / 1000, 9)
    else:
        energy = None if energy is None else float(energy)
        fwd = None if fwd is None else float(fwd)
        rev = None if rev is None else float(rev)
    values = (
        energy,
        fwd,
        rev,
        *voltage,
        *current,
        None if power_factor is None else float(power_factor),
        None if demand is None else float(demand),
        None if meter_time is None else round(_date("meter_time", meter_time) - stamp, 6),
    )
    for i, (_, at) in enumerate(events):
        _date(f"events[{i}].at", at)
    return Reading(area_id, meter_id, ts, interval_minutes, is_area_meter, values, events, index)
