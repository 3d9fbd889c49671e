"""Inspections: dispatch from alerts, the status machine, results, appeals.

Status machine (anything else is a 409)::

    dispatched ──accept──► accepted ──arrive──► on_site ──resolve──► resolved
        └───────────────┴──────────cancel──────────┴──► cancelled

Only the assigned inspector moves an inspection forward (accept, on site,
resolve with the result); operators (and admins) dispatch, cancel and handle
appeals. A result is recorded with the resolve: ``confirmed_theft`` needs the
energy to recover, ``meter_fault`` and ``archive_corrected`` may give it,
``nothing_found`` and ``no_access`` must not. Only a resolved inspection can
be appealed (one open appeal at a time; a withdrawn one may be filed again);
an appeal is decided ``upheld`` (the result stands), ``overturned`` (it does
not: reports stop counting it as confirmed) or ``withdrawn``.

Every change is audited and queues a webhook event (``inspection.<what>``) in
the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from services.api.store import alerts as alert_repo
from services.api.store.common import Actor, Conflict, Forbidden, Invalid, NotFound, audit, next_counter
from services.api.store.models import Alert, Inspection, InspectionAlert
from services.api.store.outbox import enqueue
from services.api.store.types import iso, parse_iso, utcnow

__all__ = [
    "STATUSES", "ACTIVE", "RESULTS", "TRANSITIONS", "InspectionFilter", "inspection_view", "dispatch",
    "get_inspection", "list_inspections", "transition", "set_notes", "file_appeal", "decide_appeal",
]  # fmt: skip

STATUSES = ("dispatched", "accepted", "on_site", "resolved", "cancelled")
ACTIVE = ("dispatched", "accepted", "on_site")
RESULTS = ("confirmed_theft", "meter_fault", "archive_corrected", "nothing_found", "no_access")
CONFIRMED = ("confirmed_theft", "meter_fault", "archive_corrected")
TRANSITIONS = {
    "dispatched": ("accepted", "cancelled"),
    "accepted": ("on_site", "cancelled"),
    "on_site": ("resolved", "cancelled"),
    "resolved": (),
    "cancelled": (),
}
_EVENT = {"accepted": "accepted", "on_site": "on_site", "resolved": "resolved", "cancelled": "cancelled"}
OPERATORS = ("operator", "admin")


def alert_ids_of(session: Session, inspection_ids: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {i: [] for i in inspection_ids}
    if not inspection_ids:
        return out
    rows = session.execute(
        select(InspectionAlert.inspection_id, InspectionAlert.alert_id)
        .where(InspectionAlert.inspection_id.in_(inspection_ids))
        .order_by(InspectionAlert.inspection_id, InspectionAlert.position)
    )
    for iid, aid in rows:
        out[iid].append(aid)
    return out


def inspection_view(ins: Inspection, alert_ids: list[str]) -> dict[str, Any]:
    """The inspection as ``schemas/inspection.json`` describes it (nothing more: the schema is closed)."""
    appeal = None
    if ins.appeal_status is not None:
        appeal = {
            "status": ins.appeal_status,
            "filed_at": iso(ins.appeal_filed_at),
            "decided_at": iso(ins.appeal_decided_at),
            "notes": ins.appeal_notes,
        }
    return {
        "id": ins.id,
        "alert_ids": alert_ids,
        "inspector": ins.inspector,
        "due": iso(ins.due),
        "status": ins.status,
        "result": ins.result,
        "energy_to_recover_kwh": ins.energy_to_recover_kwh,
        "notes": ins.notes,
        "appeal": appeal,
        "created_at": iso(ins.created_at),
        "updated_at": iso(ins.updated_at),
    }


def _view(session: Session, ins: Inspection) -> dict[str, Any]:
    return inspection_view(ins, alert_ids_of(session, [ins.id])[ins.id])


def _changed(session: Session, ins: Inspection, actor: Actor, action: str, before: dict[str, Any], now: datetime) -> dict[str, Any]:
    ins.version += 1
    ins.updated_at = now
    session.flush()
    after = _view(session, ins)
    audit(session, actor, f"inspection.{action}", "inspection", ins.id, before, after, at=now)
    enqueue(session, f"inspection.{action}", after, actor, at=now)
    return after


def dispatch(
    session: Session, alert_ids: Sequence[str], inspector: str, due: datetime, notes: str | None, actor: Actor
) -> dict[str, Any]:
    """A new inspection of ``alert_ids`` for ``inspector``; untriaged alerts become acknowledged."""
    if len(set(alert_ids)) != len(alert_ids):
        raise Invalid("alert_ids has repeats")
    rows = {a.id: a for a in session.scalars(select(Alert).where(Alert.id.in_(sorted(alert_ids))).order_by(Alert.id).with_for_update())}
    missing = [a for a in alert_ids if a not in rows]
    if missing:
        raise Invalid(f"unknown alert ids: {', '.join(missing)}")
    for a in rows.values():
        if a.triage in ("dismissed", "merged"):
            hint = f" into case {a.case_id}: dispatch the case's primary alert" if a.triage == "merged" else ": reopen it first"
            raise Conflict(f"alert {a.id} is {a.triage}{hint}")
    now = utcnow()
    number = next_counter(session, "inspection_no")
    ins = Inspection(
        id=f"INS-{now.year}-{number:06d}", inspector=inspector, due=due, status="dispatched", result=None,
        energy_to_recover_kwh=None, notes=notes, created_by=actor.name, created_at=now, updated_at=now, version=1,
    )  # fmt: skip
    session.add(ins)
    session.flush()
    for position, aid in enumerate(alert_ids):
        session.add(InspectionAlert(inspection_id=ins.id, alert_id=aid, position=position))
    untriaged = [rows[a] for a in alert_ids if rows[a].triage is None]
    if untriaged:
        alert_repo.apply_triage(session, actor, "alert.acknowledge", [(a, {"triage": "acknowledged"}) for a in untriaged])
    session.flush()
    view = _view(session, ins)
    audit(session, actor, "inspection.dispatch", "inspection", ins.id, None, view, at=now)
    enqueue(session, "inspection.dispatched", view, actor, at=now)
    return view


def _load(session: Session, inspection_id: str, actor: Actor, lock: bool = False) -> Inspection:
    query = select(Inspection).where(Inspection.id == inspection_id)
    if lock:
        query = query.with_for_update()
    ins = session.scalar(query)
    # An inspector must not learn that someone else's inspection exists: 404, not 403.
    if ins is None or (actor.role == "inspector" and ins.inspector != actor.name):
        raise NotFound(f"inspection {inspection_id} not found")
    return ins


def get_inspection(session: Session, inspection_id: str, actor: Actor) -> dict[str, Any]:
    return _view(session, _load(session, inspection_id, actor))


@dataclass(slots=True)
class InspectionFilter:
    statuses: list[str] = field(default_factory=list)
    inspector: str | None = None
    alert_id: str | None = None
    due_before: datetime | None = None


def list_inspections(
    session: Session, flt: InspectionFilter, actor: Actor, *, queue: bool = False, limit: int = 50, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of inspections, newest first; ``queue``: the active ones, soonest due first.

    An inspector only ever sees its own, whatever the filter says.
    """
    query = select(Inspection)
    if actor.role == "inspector":
        query = query.where(Inspection.inspector == actor.name)
    if flt.inspector:
        query = query.where(Inspection.inspector == flt.inspector)
    statuses = list(ACTIVE) if queue and not flt.statuses else flt.statuses
    if statuses:
        query = query.where(Inspection.status.in_(statuses))
    if flt.alert_id:
        query = query.where(Inspection.id.in_(select(InspectionAlert.inspection_id).where(InspectionAlert.alert_id == flt.alert_id)))
    if flt.due_before:
        query = query.where(Inspection.due <= flt.due_before)
    column = Inspection.due if queue else Inspection.created_at
    kind = "queue" if queue else "inspections"
    if cursor is not None:
        c = alert_repo.decode_token(cursor, kind)
        try:
            position = (parse_iso(c["v"]), str(c["id"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise Invalid("malformed cursor token") from exc
        pair = tuple_(column, Inspection.id)
        query = query.where(pair > tuple_(*position) if queue else pair < tuple_(*position))
    order = (column.asc(), Inspection.id.asc()) if queue else (column.desc(), Inspection.id.desc())
    rows = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    ids = alert_ids_of(session, [r.id for r in rows])
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = alert_repo.encode_token({"k": kind, "v": iso(last.due if queue else last.created_at), "id": last.id})
    return [inspection_view(r, ids[r.id]) for r in rows], next_cursor


def transition(
    session: Session,
    inspection_id: str,
    to: str,
    actor: Actor,
    *,
    result: str | None = None,
    energy_to_recover_kwh: float | None = None,
    notes: str | None = None,
) -> dict[str, Any]:
    """Move an inspection to ``to``; 409 unless the status machine allows it, 403 unless the actor may."""
    if to not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}")
    ins = _load(session, inspection_id, actor, lock=True)
    if to == "cancelled":
        if actor.role not in OPERATORS:
            raise Forbidden("only an operator or admin cancels an inspection")
    elif actor.role != "inspector" or actor.name != ins.inspector:
        raise Forbidden(f"only the assigned inspector ({ins.inspector}) moves an inspection to {to}")
    if to not in TRANSITIONS[ins.status]:
        allowed = ", ".join(TRANSITIONS[ins.status]) or "nothing"
        raise Conflict(f"inspection {ins.id} is {ins.status}: it can move to {allowed}, not {to}")
    if to == "resolved":
        if result is None:
            raise Invalid("resolving needs a result: " + ", ".join(RESULTS))
        if result == "confirmed_theft" and energy_to_recover_kwh is None:
            raise Invalid("confirmed_theft needs energy_to_recover_kwh")
        if result in ("nothing_found", "no_access") and energy_to_recover_kwh is not None:
            raise Invalid(f"{result} has no energy to recover; leave energy_to_recover_kwh out")
    elif result is not None or energy_to_recover_kwh is not None:
        raise Invalid("a result (and energy to recover) is recorded only when resolving")
    now = utcnow()
    before = _view(session, ins)
    ins.status = to
    if to == "resolved":
        ins.result, ins.energy_to_recover_kwh, ins.resolved_at = result, energy_to_recover_kwh, now
    if notes is not None:
        ins.notes = notes
    return _changed(session, ins, actor, _EVENT[to], before, now)


def set_notes(session: Session, inspection_id: str, notes: str, actor: Actor) -> dict[str, Any]:
    ins = _load(session, inspection_id, actor, lock=True)
    if actor.role not in OPERATORS and not (actor.role == "inspector" and actor.name == ins.inspector):
        raise Forbidden("only the assigned inspector or an operator edits notes")
    before = _view(session, ins)
    ins.notes = notes
    return _changed(session, ins, actor, "notes", before, utcnow())


def file_appeal(session: Session, inspection_id: str, notes: str | None, actor: Actor) -> dict[str, Any]:
    ins = _load(session, inspection_id, actor, lock=True)
    if ins.status != "resolved":
        raise Conflict(f"inspection {ins.id} is {ins.status}; only a resolved inspection can be appealed")
    if ins.appeal_status not in (None, "withdrawn"):
        raise Conflict(f"inspection {ins.id} already has an appeal ({ins.appeal_status})")
    now = utcnow()
    before = _view(session, ins)
    ins.appeal_status, ins.appeal_filed_at, ins.appeal_decided_at, ins.appeal_notes = "filed", now, None, notes
    return _changed(session, ins, actor, "appeal_filed", before, now)


def decide_appeal(session: Session, inspection_id: str, outcome: str, notes: str | None, actor: Actor) -> dict[str, Any]:
    if outcome not in ("upheld", "overturned", "withdrawn"):
        raise Invalid("outcome must be upheld, overturned or withdrawn")
    ins = _load(session, inspection_id, actor, lock=True)
    if ins.appeal_status != "filed":
        raise Conflict(f"inspection {ins.id} has no appeal under review")
    now = utcnow()
    before = _view(session, ins)
    ins.appeal_status, ins.appeal_decided_at = outcome, now
    if notes is not None:
        ins.appeal_notes = notes
    return _changed(session, ins, actor, "appeal_decided", before, now)
