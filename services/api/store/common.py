"""What every repository module shares: who acts, domain errors, counters, the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from services.api.store.models import AuditEntry, Counter
from services.api.store.types import iso, utcnow

__all__ = ["Actor", "SINK", "StoreError", "NotFound", "Forbidden", "Conflict", "Invalid", "next_counter", "audit", "diff", "jsonable"]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: a key's name and role, or a system component."""

    name: str
    role: str
    key_id: str | None = None


SINK = Actor("alert-sink", "system")


class StoreError(Exception):
    """A request the store refuses; routes map the subclasses to HTTP statuses."""


class NotFound(StoreError):
    """404: no such entity (or not one the caller may see)."""


class Forbidden(StoreError):
    """403: the caller's role or identity may not make this change."""


class Conflict(StoreError):
    """409: the entity's current state does not allow the change."""


class Invalid(StoreError):
    """422: the request is well-formed but names something unusable (unknown alert ids…)."""


def next_counter(session: Session, name: str, n: int = 1) -> int:
    """Reserve ``n`` consecutive values of counter ``name``; returns the first.

    The UPDATE takes the counter's row lock until the transaction ends, so
    values are handed out in commit order: a poller that has seen value v
    never later finds a committed change below v.
    """
    last = session.execute(
        update(Counter).where(Counter.name == name).values(value=Counter.value + n).returning(Counter.value)
    ).scalar_one()
    return int(last) - n + 1


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Only the fields that changed, as (before, after); a creation or deletion keeps the whole side."""
    if before is None or after is None:
        return (jsonable(before), jsonable(after))
    keys = [k for k in after if before.get(k) != after.get(k)]
    return ({k: jsonable(before.get(k)) for k in keys}, {k: jsonable(after[k]) for k in keys})


def audit(
    session: Session,
    actor: Actor,
    action: str,
    entity_kind: str,
    entity_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    at: datetime | None = None,
) -> None:
    """Log one change (who, when, what before and after) in the caller's transaction."""
    b, a = diff(before, after)
    session.add(
        AuditEntry(
            at=at or utcnow(), actor=actor.name, role=actor.role, action=action,
            entity_kind=entity_kind, entity_id=entity_id, before=b, after=a,
        )
    )  # fmt: skip
