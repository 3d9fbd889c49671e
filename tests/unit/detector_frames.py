"""Builders of archives, frames and whole feeds for detector tests (shared by all detector test modules).

Records are built as the contracts' JSON (schemas/README.md) and decoded with
the production decoders, so tests exercise the same path as the service;
``AreaFeed`` validates every frame it sends and every alert it gets against
the published schemas. Columns given as a scalar apply to every meter;
``None`` (or NaN) is a null; columns not given are all null.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from schemas import validator
from services.detector.archive import AreaArchive, decode_archive
from services.detector.detectors import Detector
from services.detector.eventtime import format_ts, parse_ts
from services.detector.frame import AreaFrame, decode_frame
from services.detector.pipeline import AreaPipeline
from services.detector.state import AreaState
from services.detector.thresholds import Thresholds, load_thresholds

__all__ = [
    "FRAME_COLUMNS",
    "T0",
    "STEP",
    "meter",
    "archive_record",
    "frame_record",
    "make_archive",
    "make_frame",
    "AreaFeed",
]

T0 = parse_ts("2026-01-05T00:00:00Z")  # a Monday, UTC midnight
STEP = 900  # 15 minutes

# Every column of the canonical frame (schemas/area_frame.json), in contract order.
FRAME_COLUMNS = (
    "energy_kwh", "register_fwd_kwh", "register_rev_kwh",
    "voltage_a_v", "voltage_b_v", "voltage_c_v", "current_a_a", "current_b_a", "current_c_a",
    "power_factor", "demand_kw", "clock_offset_s",
)  # fmt: skip


def meter(meter_id: str, **fields: Any) -> dict[str, Any]:
    """One archive entry: a residential single-phase meter unless ``fields`` say otherwise."""
    return {
        "meter_id": meter_id,
        "customer_class": "residential",
        "phases": 1,
        "contracted_kva": 8,
        "multiplier": 1,
        "has_generation": False,
        "status": "active",
        "nominal_voltage_v": 220,
        "basic_current_a": 5,
        "max_current_a": 60,
        "installed_at": "2025-03-01T00:00:00Z",
        **fields,
    }


def archive_record(meters: int | Sequence[dict[str, Any]] = 3, area_id: str = "A1", **fields: Any) -> dict[str, Any]:
    """An ``ami.archive`` record; ``meters`` = a count of default meters ``M1``… or explicit entries."""
    entries = [meter(f"M{i + 1}") for i in range(meters)] if isinstance(meters, int) else list(meters)
    return {
        "area_id": area_id,
        "updated_at": "2026-01-01T00:00:00Z",
        "concentrator_id": "C1",
        "area_meter": {"meter_id": "T1", "multiplier": 1, "rated_kva": 400},
        "loss_limit_pct": 10.0,
        "meters": entries,
        **fields,
    }


def make_archive(meters: int | Sequence[dict[str, Any]] = 3, area_id: str = "A1", **fields: Any) -> AreaArchive:
    """A decoded archive (see :func:`archive_record`)."""
    return decode_archive(archive_record(meters, area_id, **fields))


def _column(value: Any, n: int) -> list[Any]:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"column of {len(value)} values for {n} meters")
        return [None if (v is not None and v != v) else v for v in value]  # NaN → null
    return [value] * n


def frame_record(
    ts: int,
    meter_ids: Sequence[str],
    *,
    area_id: str = "A1",
    interval_minutes: int = 15,
    revision: int = 0,
    events: Sequence[tuple[str, str, int]] = (),
    missing: Sequence[str] = (),
    conflicts: Sequence[dict[str, Any]] = (),
    area_meter: dict[str, Any] | None = None,
    **columns: Any,
) -> dict[str, Any]:
    """An ``ami.frames`` record at interval end ``ts``; ``columns`` by contract name (``energy_kwh``, …)."""
    n = len(meter_ids)
    unknown = set(columns) - set(FRAME_COLUMNS)
    if unknown:
        raise ValueError(f"not frame columns: {sorted(unknown)}")
    meters: dict[str, Any] = {"meter_id": list(meter_ids)}
    meters.update({name: _column(columns.get(name), n) for name in FRAME_COLUMNS})
    iso = format_ts(ts)
    return {
        "frame_id": f"{area_id}|{iso}|{revision}",
        "area_id": area_id,
        "ts": iso,
        "interval_minutes": interval_minutes,
        "revision": revision,
        "closed_by": "late" if revision else "complete",
        "area_meter": area_meter,
        "meters": meters,
        "events": [{"meter_id": m, "code": c, "at": format_ts(at)} for m, c, at in events],
        "missing": list(missing),
        "conflicts": list(conflicts),
        "stats": {"readings": n, "duplicates_dropped": 0},
    }


def make_frame(ts: int, meter_ids: Sequence[str], **kw: Any) -> AreaFrame:
    """A decoded frame (see :func:`frame_record`)."""
    return decode_frame(frame_record(ts, meter_ids, **kw))


class AreaFeed:
    """One area run through the real pipeline: push frames, collect alert records.

    ``push`` defaults every archived meter into the frame; pass ``meter_ids``
    to send a subset. ``alerts`` accumulates every record produced.
    """

    def __init__(
        self,
        archive: AreaArchive | dict[str, Any] | None = None,
        *,
        thresholds: Thresholds | None = None,
        detectors: Sequence[Detector] | None = None,
    ) -> None:
        self.archive = archive if isinstance(archive, AreaArchive) else decode_archive(archive or archive_record())
        th = thresholds or load_thresholds()
        self.pipeline = AreaPipeline(th) if detectors is None else AreaPipeline(th, detectors)
        self.state: AreaState = self.pipeline.new_state(self.archive.area_id)
        self.alerts: list[dict[str, Any]] = []

    def push(self, ts: int, meter_ids: Sequence[str] | None = None, **kw: Any) -> list[dict[str, Any]]:
        """Process one frame; return (and remember) its alert records (both checked against the contracts)."""
        ids = self.archive.meter_ids if meter_ids is None else meter_ids
        record = frame_record(ts, ids, area_id=self.archive.area_id, **kw)
        validator("area_frame").validate(record)
        out = self.pipeline.process(decode_frame(record), self.archive, self.state)
        return self._keep(out)

    def _keep(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for r in orjson.loads(orjson.dumps(records)):  # plain JSON, as the sink will see it
            validator("alert").validate(r)
        self.alerts += records
        return records

    def flush(self) -> list[dict[str, Any]]:
        """Close the open day."""
        return self._keep(self.pipeline.flush(self.archive, self.state))

    def opened(self, type_: str) -> list[dict[str, Any]]:
        """The ``open`` records of one alert type produced so far."""
        return [a for a in self.alerts if a["op"] == "open" and a["type"] == type_]
