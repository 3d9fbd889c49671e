"""The webhook outbox in the store: events are written with the change they announce.

Because an event row commits in the same transaction as the inspection
change, an event exists exactly when its change does: a crash can neither
lose one nor announce a change that was rolled back. Delivery (claim, send,
retry with backoff, give up) is :mod:`services.api.webhooks`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from services.api.store.common import Actor
from services.api.store.models import OutboxMessage
from services.api.store.types import iso, utcnow

__all__ = ["enqueue", "claim_due", "mark_delivered", "mark_failed"]


def enqueue(session: Session, event: str, inspection: dict[str, Any], actor: Actor, at: datetime | None = None) -> None:
    now = at or utcnow()
    payload = {"event": event, "occurred_at": iso(now), "actor": {"name": actor.name, "role": actor.role}, "inspection": inspection}
    session.add(
        OutboxMessage(
            event=event, inspection_id=inspection["id"], payload=payload, created_at=now,
            state="pending", attempts=0, next_attempt_at=now,
        )
    )  # fmt: skip


def claim_due(session: Session, now: datetime, lease: timedelta, limit: int = 20) -> list[OutboxMessage]:
    """Pending messages due now, leased to this worker for ``lease`` (another worker skips them).

    The conditional UPDATE is the claim: of two workers only one changes the row.
    Oldest first; a retried event may arrive after a later one, so every payload
    carries the whole inspection with its ``updated_at`` and receivers keep the newest.
    """
    due = list(
        session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.state == "pending",
                OutboxMessage.next_attempt_at <= now,
                or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
    )
    claimed = []
    for m in due:
        won = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == m.id, or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now))
            .values(claimed_until=now + lease)
        ).rowcount
        if won:
            claimed.append(m)
    return claimed


def mark_delivered(session: Session, message_id: int, status: int, now: datetime) -> None:
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(state="delivered", delivered_at=now, last_status=status, attempts=OutboxMessage.attempts + 1,
                claimed_until=None, last_error=None)
    )  # fmt: skip


def mark_failed(session: Session, message_id: int, error: str, status: int | None, retry_at: datetime | None) -> None:
    """A failed attempt: retry at ``retry_at``, or give up (``dead``) when it is None."""
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(
            state="pending" if retry_at else "dead", next_attempt_at=retry_at or OutboxMessage.next_attempt_at,
            last_status=status, last_error=error[:2000], attempts=OutboxMessage.attempts + 1, claimed_until=None,
        )
    )  # fmt: skip
