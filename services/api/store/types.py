"""Column types and time helpers shared by the store.

Times are stored as naive UTC (SQLite has no time zones, PostgreSQL's
``timestamp`` keeps what it is given) and always come back as aware UTC
datetimes; on the wire they are the contract's ISO 8601 with ``Z``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.engine import Dialect
from sqlalchemy.types import JSON, TypeDecorator

__all__ = ["UTCDateTime", "BigId", "JSONType", "utcnow", "iso", "parse_iso"]

BigId = BigInteger().with_variant(Integer(), "sqlite")
"""An auto-increment key: SQLite only auto-increments ``INTEGER PRIMARY KEY``."""

JSONType = JSON(none_as_null=True)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, naive UTC in the database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite aggregates (max/min) return the stored text
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """Wall-clock now, aware UTC, to the microsecond."""
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """The contract's time format: ``2026-01-05T00:15:00Z`` (fraction only when present)."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_iso(text: str) -> datetime:
    """A contract timestamp (``…Z``) or any ISO 8601 with an offset, as aware UTC."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; use UTC with Z")
    return value.astimezone(UTC)
