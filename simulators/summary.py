"""What a run produced, counted so a plain consumer of the raw topic can reconstruct every number.

Fields of the ``--summary`` JSON:

``messages.total``
    Raw messages sent (``ami.readings.raw`` / raw.jsonl lines).
``messages.by_kind``
    Raw messages by their ``kind`` field: ``concentrator_upload``,
    ``meter_reading``, ``area_meter_reading``; ``not_json`` for those that
    Python's ``json.loads`` cannot parse (it accepts the ``NaN`` token, so a
    NaN reading still counts under its kind).
``reading_items``
    Customer-meter readings inside parseable raw messages, every copy
    counted: each item of an upload's ``readings`` plus each
    ``meter_reading`` message, malformed ones included.
``area_meter_items``
    Likewise for the area meter (an upload's ``area_meter``, each
    ``area_meter_reading`` message).
``readings``
    Valid customer readings as ingest should see them: distinct
    (meter_id, interval) pairs of archived meters delivered with a valid
    reading. Identities:
    ``reading_items = readings + duplicates.identical_readings + duplicates.conflicting + malformed.items``
    and ``readings = expected_readings − not_delivered.total``.
``area_meter_readings``
    Distinct (area, interval) pairs with an area-meter reading (one per
    area and interval: the area meter is always read).
``expected_readings``
    Archived meters × intervals: what a perfect collection would bring.
``not_delivered``
    Customer readings that never arrive validly, by cause: ``gap`` (fault),
    ``missing_data`` (the meter and area missing-data anomalies and
    area_loss_uncomputable), ``malformed`` (the reading was replaced by a
    bad one).
``duplicates``
    ``identical_messages``: messages re-sent byte for byte (fault
    ``duplicate``); ``identical_readings`` / ``identical_area_meter``: the
    reading items those copies carry; ``conflicting``: readings re-sent with
    a different value (anomaly ``duplicate_data``), each in a message of
    its own right after the original.
``malformed``
    ``messages``: standalone bad messages; ``items``: bad readings counted in
    ``reading_items`` (inside uploads or standalone ``meter_reading``);
    ``by_reason``: labels of kind malformed by dead-letter reason (one per
    bad message or bad upload item).
``late_uploads`` / ``out_of_order`` / ``unit_wh``
    Messages delivered 2+ intervals late / one interval late (after the
    next interval's) / sent in Wh.
``register_resets``
    Meter replacements (each re-publishes its area's archive).
``archives``
    Archive records published: one per area before any reading, plus one
    per replacement.
``labels``
    ``total``, ``by_kind`` and ``by_type`` (kind → type → count).
``plan_skipped``
    Anomaly kinds the planner found no room for (a fleet too small).
``timing``
    ``elapsed_s`` and ``readings_per_s`` (the only non-deterministic part).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Summary"]


@dataclass(slots=True)
class Summary:
    """Counters filled while a run emits."""

    header: dict[str, Any]
    messages_by_kind: Counter[str] = field(default_factory=Counter)
    reading_items: int = 0
    area_meter_items: int = 0
    readings: int = 0
    area_meter_readings: int = 0
    expected_readings: int = 0
    not_delivered: Counter[str] = field(default_factory=Counter)
    identical_messages: int = 0
    identical_readings: int = 0
    identical_area_meter: int = 0
    conflicting: int = 0
    malformed_messages: int = 0
    malformed_items: int = 0
    malformed_by_reason: Counter[str] = field(default_factory=Counter)
    late_uploads: int = 0
    out_of_order: int = 0
    unit_wh: int = 0
    register_resets: int = 0
    archives: int = 0
    labels: list[dict[str, Any]] = field(default_factory=list)
    plan_skipped: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        by_type: dict[str, Counter[str]] = {}
        for label in self.labels:
            by_type.setdefault(label["kind"], Counter())[label["type"]] += 1
        return {
            **self.header,
            "messages": {"total": sum(self.messages_by_kind.values()), "by_kind": dict(sorted(self.messages_by_kind.items()))},
            "reading_items": self.reading_items,
            "area_meter_items": self.area_meter_items,
            "readings": self.readings,
            "area_meter_readings": self.area_meter_readings,
            "expected_readings": self.expected_readings,
            "not_delivered": {"total": sum(self.not_delivered.values()), **dict(sorted(self.not_delivered.items()))},
            "duplicates": {
                "identical_messages": self.identical_messages,
                "identical_readings": self.identical_readings,
                "identical_area_meter": self.identical_area_meter,
                "conflicting": self.conflicting,
            },
            "malformed": {
                "messages": self.malformed_messages,
                "items": self.malformed_items,
                "total": sum(self.malformed_by_reason.values()),
                "by_reason": dict(sorted(self.malformed_by_reason.items())),
            },
            "late_uploads": self.late_uploads,
            "out_of_order": self.out_of_order,
            "unit_wh": self.unit_wh,
            "register_resets": self.register_resets,
            "archives": self.archives,
            "labels": {
                "total": len(self.labels),
                "by_kind": {kind: sum(c.values()) for kind, c in sorted(by_type.items())},
                "by_type": {kind: dict(sorted(c.items())) for kind, c in sorted(by_type.items())},
            },
            "plan_skipped": self.plan_skipped,
            "timing": {
                "elapsed_s": round(self.elapsed_s, 3),
                "readings_per_s": round(self.readings / self.elapsed_s) if self.elapsed_s > 0 else None,
            },
        }
