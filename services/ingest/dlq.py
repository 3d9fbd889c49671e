"""The dead-letter record (``schemas/dead_letter.json``): a rejection with enough to find and replay its input.

``original`` is the whole raw record, base64, even when only one reading of
an upload was rejected (``index`` says which). The record's key is the area
id the message claimed, else null; the raw record's headers are copied onto
it, so whatever a producer put there (a message reference, a trace id)
still identifies the input.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any, Protocol

from services.ingest.validation import Rejection

__all__ = ["RawRecord", "dead_letter"]


class RawRecord(Protocol):
    """What ingest reads of a raw Kafka record (aiokafka's ``ConsumerRecord`` has it)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None
    headers: Any


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dead_letter(rejection: Rejection, record: RawRecord, rejected_at: str | None = None) -> dict[str, Any]:
    """The dead-letter record for ``rejection`` of ``record`` (``rejected_at`` defaults to now)."""
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    return {
        "reason": rejection.reason,
        "message": rejection.message or rejection.reason,
        "origin": {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "key": key,
            "timestamp_ms": record.timestamp if record.timestamp is not None and record.timestamp >= 0 else None,
        },
        "original": base64.b64encode(record.value or b"").decode("ascii"),
        "original_encoding": "base64",
        "index": rejection.index,
        "meter_id": rejection.meter_id,
        "area_id": rejection.area_id,
        "rejected_at": rejected_at or _now(),
    }
