"""The store's tables (SQLAlchemy 2 declarative). Migrations in ``migrations/`` create them.

Who writes what:

- ``alerts``: the alert sink writes the *stream* columns (what the detector
  says: type, subject, severity, score, times, evidence, ``stream_status``
  open/resolved); the HTTP API writes the *triage* columns (``triage``
  acknowledged/dismissed/merged, ``case_id``, reason, who and when). Neither
  touches the other's, so triage survives every later update from the stream.
  ``status`` is derived from both (see :func:`services.api.store.alerts.display_status`).
  Every change takes the next ``seq`` from the ``alert_seq`` counter in the same
  transaction; ``changed_since`` polling and list ETags are built on it.
- ``inspections`` / ``inspection_alerts``: the API (dispatch, transitions, appeal).
- ``audit_log``: one row per change of anything above, in the same transaction.
- ``webhook_outbox``: inspection events written with the change that caused them,
  delivered later by :mod:`services.api.webhooks`.
- ``meters``, ``areas``, ``meter_days``, ``area_days``: the readings context
  (archive and daily energy) projected from ``ami.archive`` and ``ami.frames``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Float, ForeignKey, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.api.store.types import BigId, JSONType, UTCDateTime

__all__ = [
    "Base", "Alert", "Inspection", "InspectionAlert", "ApiKey", "AuditEntry",
    "OutboxMessage", "Counter", "MeterArchive", "AreaArchive", "MeterDay", "AreaDay",
]  # fmt: skip

ID = String(64)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONType, datetime: UTCDateTime}


class Counter(Base):
    """Named monotonic counters (``alert_seq``, ``inspection_no``); a row lock orders writers."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigId, default=0)


class Alert(Base):
    __tablename__ = "alerts"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    # stream columns (the sink)
    type: Mapped[str] = mapped_column(String(32), index=True)
    subject_kind: Mapped[str] = mapped_column(String(8))
    subject_id: Mapped[str] = mapped_column(ID, index=True)
    area_id: Mapped[str] = mapped_column(ID, index=True)
    severity: Mapped[str] = mapped_column(String(8))
    severity_rank: Mapped[int] = mapped_column(SmallInteger)
    score: Mapped[float] = mapped_column(Float)
    stream_status: Mapped[str] = mapped_column(String(8))
    first_seen: Mapped[datetime] = mapped_column(index=True)
    last_seen: Mapped[datetime] = mapped_column(index=True)
    evidence: Mapped[dict[str, Any]]
    src_partition: Mapped[int] = mapped_column(Integer)
    src_offset: Mapped[int] = mapped_column(BigId)
    # triage columns (the API)
    triage: Mapped[str | None] = mapped_column(String(16))
    case_id: Mapped[str | None] = mapped_column(ID, index=True)
    dismiss_reason: Mapped[str | None] = mapped_column(Text)
    triaged_by: Mapped[str | None] = mapped_column(ID)
    triaged_at: Mapped[datetime | None]
    # derived and bookkeeping
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    seq: Mapped[int] = mapped_column(BigId, unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (
        Index("ix_alerts_last_seen_id", "last_seen", "id"),
        Index("ix_alerts_score_id", "score", "id"),
        Index("ix_alerts_severity_id", "severity_rank", "id"),
    )


class Inspection(Base):
    __tablename__ = "inspections"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    inspector: Mapped[str] = mapped_column(ID, index=True)
    due: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), index=True)
    result: Mapped[str | None] = mapped_column(String(32))
    energy_to_recover_kwh: Mapped[float | None] = mapped_column(Float)
    notes: Mapped[str | None] = mapped_column(Text)
    appeal_status: Mapped[str | None] = mapped_column(String(16))
    appeal_filed_at: Mapped[datetime | None]
    appeal_decided_at: Mapped[datetime | None]
    appeal_notes: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(ID)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(index=True)
    resolved_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)


class InspectionAlert(Base):
    __tablename__ = "inspection_alerts"
    inspection_id: Mapped[str] = mapped_column(ForeignKey("inspections.id"), primary_key=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(SmallInteger)


class ApiKey(Base):
    """A bearer key: ``amw_<id>_<secret>``; only SHA-256 of the secret is kept."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(ID, index=True)
    role: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(ID)
    revoked_at: Mapped[datetime | None]


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(ID)
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    entity_kind: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[str] = mapped_column(ID)
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]

    __table_args__ = (Index("ix_audit_entity", "entity_kind", "entity_id"),)


class OutboxMessage(Base):
    """One webhook delivery to make; written in the transaction of the change it announces."""

    __tablename__ = "webhook_outbox"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event: Mapped[str] = mapped_column(String(32))
    inspection_id: Mapped[str] = mapped_column(String(32), index=True)
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(12), index=True)  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(index=True)
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status: Mapped[int | None] = mapped_column(Integer)
    delivered_at: Mapped[datetime | None]


class AreaArchive(Base):
    """An area's archive record (``ami.archive``), newest ``updated_at`` wins."""

    __tablename__ = "areas"
    area_id: Mapped[str] = mapped_column(ID, primary_key=True)
    concentrator_id: Mapped[str] = mapped_column(ID)
    area_meter_id: Mapped[str] = mapped_column(ID)
    loss_limit_pct: Mapped[float] = mapped_column(Float)
    active_meters: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class MeterArchive(Base):
    """One meter's entry of its area's archive."""

    __tablename__ = "meters"
    meter_id: Mapped[str] = mapped_column(ID, primary_key=True)
    area_id: Mapped[str] = mapped_column(ID, index=True)
    archive: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class MeterDay(Base):
    """A meter's energy of one UTC day, summed from frames; ``mask`` marks the intervals counted."""

    __tablename__ = "meter_days"
    meter_id: Mapped[str] = mapped_column(ID, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    area_id: Mapped[str] = mapped_column(ID)
    kwh: Mapped[float] = mapped_column(Float)
    intervals: Mapped[int] = mapped_column(SmallInteger)
    intervals_per_day: Mapped[int] = mapped_column(SmallInteger)
    mask: Mapped[str] = mapped_column(String(96))

    __table_args__ = (Index("ix_meter_days_area_day", "area_id", "day"),)


class AreaDay(Base):
    """The energy an area's meter supplied in one UTC day (the loss balance's top side)."""

    __tablename__ = "area_days"
    area_id: Mapped[str] = mapped_column(ID, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    supplied_kwh: Mapped[float] = mapped_column(Float)
    intervals: Mapped[int] = mapped_column(SmallInteger)
    intervals_per_day: Mapped[int] = mapped_column(SmallInteger)
    mask: Mapped[str] = mapped_column(String(96))
