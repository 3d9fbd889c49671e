"""``/api/v1/inspections``: dispatch, list, an inspector's queue, transitions, notes, appeals."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status

from services.api.api.deps import AnyRole, Operator, StoreDep
from services.api.api.models import (
    AppealDecisionIn, AppealIn, DispatchIn, InspectionOut, InspectionPage, NotesIn, Timestamp, TransitionIn,
)  # fmt: skip
from services.api.api.responses import AUTH, CONFLICT, INVALID, NOT_FOUND, unprocessable
from services.api.store import inspections as repo

router = APIRouter(prefix="/inspections", tags=["inspections"])

InspectionIdPath = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9-]+$")]
InspectionStatus = Literal["dispatched", "accepted", "on_site", "resolved", "cancelled"]


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=InspectionOut,
    responses={**AUTH, **CONFLICT, **INVALID},
    summary="Dispatch an inspection for one or more alerts",
    description="Untriaged alerts become `acknowledged`. Dismissed or merged alerts cannot be dispatched (409).",
)  # fmt: skip
def dispatch(body: DispatchIn, store: StoreDep, actor: Operator) -> Any:
    with store.write() as session:
        return repo.dispatch(session, body.alert_ids, body.inspector, body.due, body.notes, actor)


@router.get(
    "", response_model=InspectionPage, responses=AUTH, summary="List inspections (newest first)",
    description="An inspector's key lists only the inspections assigned to it.",
)  # fmt: skip
def list_inspections(
    store: StoreDep,
    actor: AnyRole,
    status_: Annotated[list[InspectionStatus] | None, Query(alias="status", max_length=5)] = None,
    inspector: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    alert_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$")] = None,
    due_before: Timestamp | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> Any:
    flt = repo.InspectionFilter(list(status_ or []), inspector, alert_id, due_before)
    with store.read() as session:
        items, next_cursor = repo.list_inspections(session, flt, actor, limit=limit, cursor=cursor)
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/queue", response_model=InspectionPage, responses={**AUTH, **INVALID},
    summary="An inspector's queue: active inspections, soonest due first",
    description="With an inspector's key: its own queue. Viewers and operators name the inspector (`inspector=`).",
)  # fmt: skip
def queue(
    store: StoreDep,
    actor: AnyRole,
    inspector: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> Any:
    if actor.role == "inspector":
        if inspector not in (None, actor.name):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "an inspector sees only its own queue")
        inspector = actor.name
    elif inspector is None:
        raise unprocessable("name the inspector: ?inspector=<id>", "query", "inspector")
    with store.read() as session:
        items, next_cursor = repo.list_inspections(session, repo.InspectionFilter(inspector=inspector), actor, queue=True, limit=limit, cursor=cursor)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/{inspection_id}", response_model=InspectionOut, responses={**AUTH, **NOT_FOUND}, summary="One inspection")
def get_inspection(inspection_id: InspectionIdPath, store: StoreDep, actor: AnyRole) -> Any:
    with store.read() as session:
        return repo.get_inspection(session, inspection_id, actor)


@router.post(
    "/{inspection_id}/transitions", response_model=InspectionOut,
    responses={**AUTH, **NOT_FOUND, **CONFLICT, **INVALID},
    summary="Move an inspection: accepted, on_site, resolved (with the result), cancelled",
    description=(
        "dispatched → accepted → on_site → resolved; any active status → cancelled. Anything else is 409. "
        "The assigned inspector moves it forward and records the result; an operator cancels."
    ),
)  # fmt: skip
def transition(inspection_id: InspectionIdPath, body: TransitionIn, store: StoreDep, actor: AnyRole) -> Any:
    with store.write() as session:
        return repo.transition(
            session, inspection_id, body.status, actor,
            result=body.result, energy_to_recover_kwh=body.energy_to_recover_kwh, notes=body.notes,
        )  # fmt: skip


@router.put("/{inspection_id}/notes", response_model=InspectionOut, responses={**AUTH, **NOT_FOUND}, summary="Replace the notes")
def set_notes(inspection_id: InspectionIdPath, body: NotesIn, store: StoreDep, actor: AnyRole) -> Any:
    with store.write() as session:
        return repo.set_notes(session, inspection_id, body.notes, actor)


@router.post(
    "/{inspection_id}/appeal", response_model=InspectionOut, responses={**AUTH, **NOT_FOUND, **CONFLICT},
    summary="File the customer's appeal of a resolved inspection (review starts)",
)  # fmt: skip
def file_appeal(inspection_id: InspectionIdPath, body: AppealIn, store: StoreDep, actor: Operator) -> Any:
    with store.write() as session:
        return repo.file_appeal(session, inspection_id, body.notes, actor)


@router.post(
    "/{inspection_id}/appeal/decision", response_model=InspectionOut, responses={**AUTH, **NOT_FOUND, **CONFLICT},
    summary="Decide the appeal under review: upheld, overturned or withdrawn",
)  # fmt: skip
def decide_appeal(inspection_id: InspectionIdPath, body: AppealDecisionIn, store: StoreDep, actor: Operator) -> Any:
    with store.write() as session:
        return repo.decide_appeal(session, inspection_id, body.outcome, body.notes, actor)
