"""Readings rows → the raw messages a head-end would have sent → the offline runner.

Why messages and not frames: ingest's validation, unit handling,
alignment, duplicate and conflict rules and frame closing are part of what
makes the live alerts what they are. Building ``concentrator_upload``
messages (one per area and interval, the area meter's reading as its
``area_meter``) and handing them to :class:`~services.detector.offline.OfflineRunner`
runs exactly that code, so a backtest of a CSV export of a simulated run
gets the frames the stream got, wherever the export carries the same
values.

Rows are grouped by consecutive timestamp (the file is in time order, see
``survey``); within a timestamp, by area in order of first appearance.
Archive versions become due before the first group stamped at or after
their ``updated_at``. A second reading of the same area meter in one
group travels as its own ``area_meter_reading`` message (an upload holds
one), so ingest judges it as it would judge a re-send.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from services.detector.backtest.archive import ArchiveTimeline, area_meter_ids, meter_areas
from services.detector.backtest.events import MeterEvents
from services.detector.backtest.survey import area_of
from services.detector.backtest.table import Row
from services.detector.eventtime import parse_ts
from services.detector.offline import OfflineRunner

__all__ = ["Replay", "reading_item"]

_PHASES = (("voltage", ("voltage", "voltage_b", "voltage_c")), ("current", ("current", "current_b", "current_c")))
_PLAIN = (("energy", "energy"), ("register", "register_fwd"), ("register_rev", "register_rev"),
          ("power_factor", "power_factor"), ("demand", "demand_kw"))  # fmt: skip


def _meter_time(ts: int, offset_s: float) -> str:
    stamp = datetime.fromtimestamp(ts + offset_s, UTC)
    text = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{stamp.microsecond:06d}Z" if stamp.microsecond else "Z")


def reading_item(row: Row, ts: int, events: list[dict[str, str]]) -> dict[str, Any]:
    """The per-meter part of a raw reading (``common.json#/$defs/reading``) for ``row`` stamped ``ts``."""
    values = row.values
    item: dict[str, Any] = {"meter_id": row.meter}
    for field, name in _PLAIN:
        if field in values:
            item[name] = values[field]
    for name, fields in _PHASES:
        phases = {p: values[f] for p, f in zip("abc", fields, strict=True) if f in values}
        if phases:
            item[name] = phases
    if "clock_offset" in values:
        item["meter_time"] = _meter_time(ts, values["clock_offset"])
    if events:
        item["events"] = events
    return item


@dataclass(slots=True)
class _Upload:
    area_id: str
    area_meter: dict[str, Any] | None
    readings: list[dict[str, Any]]


class Replay:
    """Turns time-ordered rows into messages for ``runner`` (see the module docstring)."""

    __slots__ = ("_runner", "_timeline", "_events", "_interval", "_area_meters", "_meter_areas", "_concentrators", "messages")

    def __init__(self, runner: OfflineRunner, timeline: ArchiveTimeline, events: MeterEvents, interval_minutes: int) -> None:
        self._runner = runner
        self._timeline = timeline
        self._events = events
        self._interval = interval_minutes
        self._area_meters = area_meter_ids(timeline.records(), {})
        self._meter_areas = meter_areas(timeline.records())
        self._concentrators: dict[str, str] = {}
        self.messages = 0

    def _archive(self, record: dict[str, Any]) -> None:
        self._concentrators[record["area_id"]] = record["concentrator_id"]
        self._runner.archive(record["area_id"], orjson.dumps(record))

    def _send(self, message: dict[str, Any]) -> None:
        self._runner.raw(message["area_id"], orjson.dumps(message))
        self.messages += 1

    def _flush(self, ts: str, group: dict[str, _Upload]) -> None:
        for upload in group.values():
            message: dict[str, Any] = {
                "kind": "concentrator_upload",
                "concentrator_id": self._concentrators.get(upload.area_id, f"C-{upload.area_id}"),
                "area_id": upload.area_id,
                "ts": ts,
                "interval_minutes": self._interval,
                "unit": "kWh",
                "readings": upload.readings,
            }
            if upload.area_meter is not None:
                message["area_meter"] = upload.area_meter
            self._send(message)

    def feed(self, rows: Iterable[Row]) -> None:
        """Send every row (in the given order) and the archive versions as they become due."""
        for record in self._timeline.initial:
            self._archive(record)
        group: dict[str, _Upload] = {}
        group_ts, epoch = "", 0
        for row in rows:
            if row.ts != group_ts:
                self._flush(group_ts, group)
                group, group_ts, epoch = {}, row.ts, parse_ts(row.ts)
                for record in self._timeline.due(epoch):
                    self._archive(record)
            item = reading_item(row, epoch, self._events.due(row.meter, epoch))
            area_meter_of = self._area_meters.get(row.meter)
            area = row.area or area_meter_of or area_of(row, self._meter_areas)
            upload = group.get(area)
            if upload is None:
                upload = group[area] = _Upload(area, None, [])
            if area_meter_of is None:
                upload.readings.append(item)
            elif upload.area_meter is None:
                upload.area_meter = item
            else:
                self._send({"kind": "area_meter_reading", "area_id": area, "ts": row.ts,
                            "interval_minutes": self._interval, "unit": "kWh", **item})  # fmt: skip
        self._flush(group_ts, group)
