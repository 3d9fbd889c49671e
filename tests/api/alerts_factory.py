"""Alert records per ``schemas/alert.json`` for tests, until the detector's are at hand."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import schemas

__all__ = ["alert_record", "day"]

T0 = datetime(2026, 1, 13, tzinfo=UTC)


def day(n: float) -> str:
    """``T0 + n days`` in the contract's format."""
    return (T0 + timedelta(days=n)).strftime("%Y-%m-%dT%H:%M:%SZ")


def alert_record(
    subject_id: str = "M0003-0042",
    type_: str = "theft_suspected",
    *,
    op: str = "open",
    area_id: str = "A0003",
    first_seen: str | None = None,
    last_seen: str | None = None,
    severity: str = "high",
    score: float = 0.91,
    evidence: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A valid alert record (checked against the schema); ``alert_id`` as the detector derives it."""
    subject_kind = "area" if type_.startswith("area_") else "meter"
    if subject_kind == "area":
        subject_id = area_id
    first_seen = first_seen or day(0)
    record = {
        "alert_id": hashlib.sha256(f"{type_}|{subject_kind}|{subject_id}|{first_seen}".encode()).hexdigest(),
        "op": op,
        "type": type_,
        "subject_kind": subject_kind,
        "subject_id": subject_id,
        "area_id": area_id,
        "severity": severity,
        "score": score,
        "status": "resolved" if op == "resolve" else "open",
        "first_seen": first_seen,
        "last_seen": last_seen or first_seen,
        "evidence": evidence if evidence is not None else {
            "baseline_kwh_day": 11.2, "observed_kwh_day": 6.1, "contributions": {"sustained_drop": 0.5},
        },
    }  # fmt: skip
    schemas.validator("alert").validate(record)
    return record
