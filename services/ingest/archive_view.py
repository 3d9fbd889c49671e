"""The current customer archive as ingest needs it: which areas and meters exist, which are active.

State lives in memory only and is rebuilt from the compacted archive topic
(``ami.archive``, one record per area, latest wins, a tombstone deletes) on
every start: every partition is read to its end before the first raw
message is judged, and then followed for the life of the process. Nothing
of it is checkpointed: ingest's archive decisions (``unknown_area``,
``unknown_meter``) are taken once per raw reading and recorded in the
checkpoint (see :mod:`services.ingest.checkpoint`), so a restart never needs
the archive as it was.

Only the fields ingest uses are checked; the full record is the detector's
business and jsonschema is too slow for archives of hundreds of meters.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from services.ingest.compacted import read_to_end

__all__ = ["AreaArchive", "ArchiveView", "follow_archive"]

log = logging.getLogger(__name__)


class AreaArchive:
    """One area's archive: its area meter and its customer meters with their status."""

    __slots__ = ("area_id", "area_meter_id", "statuses", "active")

    def __init__(self, area_id: str, area_meter_id: str | None, statuses: dict[str, str]) -> None:
        self.area_id = area_id
        self.area_meter_id = area_meter_id
        self.statuses = statuses
        self.active = frozenset(m for m, status in statuses.items() if status == "active")

    def knows(self, meter_id: str, is_area_meter: bool) -> bool:
        """Whether a reading from ``meter_id`` (as an area meter or a customer meter) belongs to this area."""
        if is_area_meter:
            return meter_id == self.area_meter_id
        return meter_id in self.statuses

    def missing(self, reported: set[str] | dict[str, Any]) -> list[str]:
        """Active customer meters that did not report, sorted."""
        return sorted(self.active.difference(reported))

    def complete(self, active_reported: int, area_meter_reported: bool) -> bool:
        """Every active customer meter (``active_reported`` of :attr:`active` did) and the area meter, if the
        archive has one, reported."""
        if self.area_meter_id is not None and not area_meter_reported:
            return False
        return active_reported == len(self.active)


def _area(record: Any) -> AreaArchive | None:
    if type(record) is not dict or type(record.get("area_id")) is not str or type(record.get("meters")) is not list:
        return None
    area_meter = record.get("area_meter")
    area_meter_id = area_meter.get("meter_id") if type(area_meter) is dict else None
    statuses: dict[str, str] = {}
    for meter in record["meters"]:
        if type(meter) is not dict or type(meter.get("meter_id")) is not str or type(meter.get("status")) is not str:
            return None
        statuses[meter["meter_id"]] = meter["status"]
    return AreaArchive(record["area_id"], area_meter_id if type(area_meter_id) is str else None, statuses)


class ArchiveView:
    """Area id → :class:`AreaArchive`, updated record by record from the archive topic."""

    __slots__ = ("_areas", "malformed")

    def __init__(self) -> None:
        self._areas: dict[str, AreaArchive] = {}
        self.malformed = 0

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Take one archive record: a new version of an area, or (``value`` None) its deletion."""
        if value is None:
            if key is not None:
                self._areas.pop(key.decode("utf-8", "replace"), None)
            return
        try:
            area = _area(orjson.loads(value))
        except orjson.JSONDecodeError:
            area = None
        if area is None:
            self.malformed += 1
            log.warning("ignoring a malformed archive record (key %r)", key)
            return
        self._areas[area.area_id] = area

    def put(self, area: AreaArchive) -> None:
        """Set an area directly (tests, tools)."""
        self._areas[area.area_id] = area

    def get(self, area_id: str) -> AreaArchive | None:
        """The area's archive, or None if the archive does not know the area."""
        return self._areas.get(area_id)

    def __len__(self) -> int:
        return len(self._areas)


async def follow_archive(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], view: ArchiveView, ready: asyncio.Event
) -> None:
    """Read the archive topic's ``partitions`` (all of them) into ``view`` to their end, set ``ready``,
    then keep following them until cancelled.

    ``consumer`` is started, outside any group, and used by nothing else.
    """

    def apply(record: ConsumerRecord) -> None:
        view.apply(record.key, record.value)

    await read_to_end(consumer, partitions, apply)
    log.info("archive loaded: %d areas", len(view))
    ready.set()
    while True:
        batch = await consumer.getmany(timeout_ms=1000)
        for records in batch.values():
            for record in records:
                apply(record)
