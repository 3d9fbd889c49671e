"""The canonical area frame (``ami.frames``) decoded straight into numpy.

Ingest publishes one columnar frame per area and interval (schemas/README.md,
"Canonical frame"): one array per field in one meter order, so decoding is a
handful of ``np.array`` calls, not per-reading Python. Nulls become NaN; a
phase the meter does not have is NaN too. Energies are kWh on the primary side;
registers are the meter's own display (secondary side).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from services.detector.eventtime import parse_ts

__all__ = ["AreaFrame", "AreaMeterReading", "Conflict", "MeterEvent", "decode_frame"]

_PHASES = ("a", "b", "c")


@dataclass(frozen=True, slots=True)
class MeterEvent:
    """An event a meter reported (``code`` from the contract's list), ``at`` epoch s."""

    meter_id: str
    code: str
    at: int


@dataclass(frozen=True, slots=True)
class Conflict:
    """The same meter and interval delivered twice with different values; ``kept`` is the first."""

    meter_id: str
    field: str
    kept: float
    other: float


@dataclass(frozen=True, slots=True)
class AreaMeterReading:
    """The area (transformer) meter's reading in a frame; NaN when absent."""

    meter_id: str
    energy_kwh: float
    register_fwd_kwh: float


@dataclass(frozen=True, slots=True, eq=False)
class AreaFrame:
    """One area × one interval: arrays of length n (``voltage``/``current`` are (n, 3)).

    ``ts`` is the interval's end (epoch s). ``revision`` ≥ 1 marks a correction
    frame that carries only late readings.
    """

    frame_id: str
    area_id: str
    ts: int
    interval_minutes: int
    revision: int
    closed_by: str
    meter_ids: tuple[str, ...]
    energy_kwh: np.ndarray
    register_fwd_kwh: np.ndarray
    register_rev_kwh: np.ndarray
    voltage: np.ndarray
    current: np.ndarray
    power_factor: np.ndarray
    demand_kw: np.ndarray
    clock_offset_s: np.ndarray
    events: tuple[MeterEvent, ...]
    missing: tuple[str, ...]
    conflicts: tuple[Conflict, ...]
    area_meter: AreaMeterReading | None

    @property
    def n(self) -> int:
        """Number of meter readings in the frame."""
        return len(self.meter_ids)

    @property
    def interval_s(self) -> int:
        """Interval length in seconds."""
        return self.interval_minutes * 60

    def take(self, rows: np.ndarray) -> AreaFrame:
        """The same frame restricted to ``rows`` (events and conflicts of dropped meters go too)."""
        ids = tuple(self.meter_ids[i] for i in rows)
        keep = set(ids)
        return replace(
            self,
            meter_ids=ids,
            energy_kwh=self.energy_kwh[rows],
            register_fwd_kwh=self.register_fwd_kwh[rows],
            register_rev_kwh=self.register_rev_kwh[rows],
            voltage=self.voltage[rows],
            current=self.current[rows],
            power_factor=self.power_factor[rows],
            demand_kw=self.demand_kw[rows],
            clock_offset_s=self.clock_offset_s[rows],
            events=tuple(e for e in self.events if e.meter_id in keep),
            conflicts=tuple(c for c in self.conflicts if c.meter_id in keep),
        )


def _col(meters: dict[str, Any], name: str, n: int) -> np.ndarray:
    values = meters.get(name)
    if values is None:
        return np.full(n, np.nan)
    return np.array(values, dtype=np.float64)


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def decode_frame(obj: dict[str, Any]) -> AreaFrame:
    """Decode an ``ami.frames`` message (already parsed JSON) into an :class:`AreaFrame`."""
    meters = obj.get("meters") or {}
    ids = tuple(meters.get("meter_id") or ())
    n = len(ids)
    am = obj.get("area_meter")
    return AreaFrame(
        frame_id=str(obj.get("frame_id", "")),
        area_id=str(obj["area_id"]),
        ts=parse_ts(obj["ts"]),
        interval_minutes=int(obj["interval_minutes"]),
        revision=int(obj.get("revision", 0)),
        closed_by=str(obj.get("closed_by", "complete")),
        meter_ids=ids,
        energy_kwh=_col(meters, "energy_kwh", n),
        register_fwd_kwh=_col(meters, "register_fwd_kwh", n),
        register_rev_kwh=_col(meters, "register_rev_kwh", n),
        voltage=np.stack([_col(meters, f"voltage_{p}_v", n) for p in _PHASES], axis=1),
        current=np.stack([_col(meters, f"current_{p}_a", n) for p in _PHASES], axis=1),
        power_factor=_col(meters, "power_factor", n),
        demand_kw=_col(meters, "demand_kw", n),
        clock_offset_s=_col(meters, "clock_offset_s", n),
        events=tuple(
            MeterEvent(str(e["meter_id"]), str(e["code"]), parse_ts(e["at"])) for e in obj.get("events") or ()
        ),
        missing=tuple(obj.get("missing") or ()),
        conflicts=tuple(
            Conflict(str(c["meter_id"]), str(c["field"]), _num(c.get("kept")), _num(c.get("other")))
            for c in obj.get("conflicts") or ()
        ),
        area_meter=None
        if not am
        else AreaMeterReading(
            str(am.get("meter_id", "")), _num(am.get("energy_kwh")), _num(am.get("register_fwd_kwh"))
        ),
    )
