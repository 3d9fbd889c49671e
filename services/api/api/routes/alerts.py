"""``/api/v1/alerts``: list (filters, sorting, cursors, ``changed_since``, ETag/304), detail, triage."""

from __future__ import annotations

from datetime import timedelta
from enum import Enum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse

import schemas
from services.api.api.deps import AnyRole, Operator, StoreDep, Viewer
from services.api.api.models import AlertDetail, AlertOut, AlertPage, DismissIn, MergeIn, MergeOut, Timestamp
from services.api.api.responses import AUTH, CONFLICT, NOT_FOUND, NOT_MODIFIED, conditional
from services.api.store import alerts as repo
from services.api.store import context
from services.api.store.inspections import inspection_view
from services.api.store.inspections import alert_ids_of as inspection_alert_ids

router = APIRouter(prefix="/alerts", tags=["alerts"])

AnomalyType = Enum("AnomalyType", {t: t for t in schemas.load("common")["$defs"]["anomaly_type"]["enum"]}, type=str)  # type: ignore[misc]
Severity = Literal["low", "medium", "high", "critical"]
Status = Literal["open", "acknowledged", "dismissed", "merged", "resolved"]
Sort = Literal[
    "-last_seen", "last_seen", "-first_seen", "first_seen", "-score", "score", "-severity", "severity", "-updated", "updated"
]
AlertIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="64 lowercase hex digits")]
Token = Annotated[str, Query(min_length=1, max_length=512)]
IdQuery = Annotated[list[Annotated[str, Query(min_length=1, max_length=64)]] | None, Query(max_length=100)]


@router.get(
    "",
    response_model=AlertPage,
    responses={**AUTH, **NOT_MODIFIED},
    summary="List alerts",
    description=(
        "Filter by type, severity, status, area, meter and time range (an alert overlaps [since, until]); "
        "sort; page with `cursor`. A dashboard polls with `changed_since=<sync_token of its last response>` "
        "to get only the alerts that changed since (oldest change first), and sends the last `ETag` in "
        "`If-None-Match`: the answer is `304 Not Modified` while nothing in the store changed."
    ),
)
def list_alerts(
    request: Request,
    store: StoreDep,
    _: Viewer,
    type: Annotated[list[AnomalyType] | None, Query(max_length=30)] = None,  # noqa: A002 - the API's name
    severity: Annotated[list[Severity] | None, Query(max_length=4)] = None,
    status_: Annotated[list[Status] | None, Query(alias="status", max_length=5)] = None,
    area_id: IdQuery = None,
    meter: IdQuery = None,
    subject_id: IdQuery = None,
    case_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$")] = None,
    since: Annotated[Timestamp | None, Query(description="alerts still active at or after this time (last_seen ≥ since)")] = None,
    until: Annotated[Timestamp | None, Query(description="alerts started at or before this time (first_seen ≤ until)")] = None,
    min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
    sort: Sort = "-last_seen",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Token | None = None,
    changed_since: Token | None = None,
) -> Any:
    flt = repo.AlertFilter(
        types=[t.value for t in type or []], severities=list(severity or []), statuses=list(status_ or []),
        areas=list(area_id or []), meters=list(meter or []), subject_ids=list(subject_id or []),
        case_id=case_id, since=since, until=until, min_score=min_score,
    )  # fmt: skip
    # The tag is the question (without changed_since) and the store's change counter: a poll whose
    # If-None-Match is its last tag gets 304 until anything changes, whatever token it sends.
    query = sorted((k, v) for k, v in request.query_params.multi_items() if k != "changed_since")
    with store.read() as session:
        tag = repo.etag_for("alerts", query, repo.current_seq(session))
        if conditional(request, tag):
            return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": tag})
        page = repo.list_alerts(session, flt, sort=sort, limit=limit, cursor=cursor, changed_since=changed_since)
    tag = repo.etag_for("alerts", query, page.seq)
    body = {"items": page.items, "next_cursor": page.next_cursor, "sync_token": page.sync_token}
    return JSONResponse(body, headers={"ETag": tag, "Cache-Control": "no-cache"})


@router.get(
    "/{alert_id}",
    response_model=AlertDetail,
    responses={**AUTH, **NOT_FOUND, **NOT_MODIFIED},
    summary="One alert with its evidence, readings, baseline, case and inspections",
)
def get_alert(request: Request, alert_id: AlertIdPath, store: StoreDep, actor: AnyRole) -> Any:
    with store.read() as session:
        if actor.role == "inspector" and not repo.inspector_may_see(session, alert_id, actor.name):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id} not found")
        a = repo.get_alert(session, alert_id)
        body = repo.alert_view(a)
        end = a.last_seen.date()
        days = context.subject_days(session, a.subject_kind, a.subject_id, end - timedelta(days=context.BASELINE_DAYS + 14), end)
        base, n = context.baseline(days, a.first_seen.date())
        evidence_base = a.evidence.get("baseline_kwh_day") if isinstance(a.evidence, dict) else None
        body["readings"] = {
            "days": days[-(14 + (a.last_seen - a.first_seen).days):],
            "baseline_kwh_day": base,
            "baseline_days": n,
            "detector_baseline_kwh_day": evidence_base if isinstance(evidence_base, int | float) else None,
        }
        case_id = a.case_id
        body["case"] = None
        if case_id:
            members = repo.list_alerts(session, repo.AlertFilter(case_id=case_id), sort="first_seen", limit=500).items
            body["case"] = {"primary": case_id, "members": [m["id"] for m in members if m["id"] != case_id]}
        inspections = repo.linked_inspections(session, [alert_id])
        if actor.role == "inspector":
            inspections = [i for i in inspections if i.inspector == actor.name]
        ids = inspection_alert_ids(session, [i.id for i in inspections])
        body["inspections"] = [inspection_view(i, ids[i.id]) for i in inspections]
    tag = repo.etag_for(body)
    if conditional(request, tag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": tag})
    return JSONResponse(body, headers={"ETag": tag, "Cache-Control": "no-cache"})


def _triaged(alert: repo.Alert) -> dict[str, Any]:
    return repo.alert_view(alert)


@router.post("/{alert_id}/acknowledge", response_model=AlertOut, responses={**AUTH, **NOT_FOUND, **CONFLICT}, summary="Acknowledge")
def acknowledge(alert_id: AlertIdPath, store: StoreDep, actor: Operator) -> Any:
    with store.write() as session:
        return _triaged(repo.acknowledge(session, alert_id, actor))


@router.post("/{alert_id}/dismiss", response_model=AlertOut, responses={**AUTH, **NOT_FOUND, **CONFLICT}, summary="Dismiss with a reason")
def dismiss(alert_id: AlertIdPath, body: DismissIn, store: StoreDep, actor: Operator) -> Any:
    with store.write() as session:
        return _triaged(repo.dismiss(session, alert_id, body.reason, actor))


@router.post(
    "/{alert_id}/reopen", response_model=AlertOut, responses={**AUTH, **NOT_FOUND, **CONFLICT},
    summary="Undo acknowledge, dismiss or merge",
)  # fmt: skip
def reopen(alert_id: AlertIdPath, store: StoreDep, actor: Operator) -> Any:
    with store.write() as session:
        return _triaged(repo.reopen(session, alert_id, actor))


@router.post(
    "/merge", response_model=MergeOut, responses={**AUTH, **CONFLICT},
    summary="Merge alerts into one case",
    description="The primary (`into`, default the first id) heads the case; the others become `merged` with `case_id` = the primary.",
)  # fmt: skip
def merge(body: MergeIn, store: StoreDep, actor: Operator) -> Any:
    with store.write() as session:
        merged = repo.merge(session, body.alert_ids, body.into, actor)
        return {"case_id": merged[0].id, "items": [repo.alert_view(a) for a in merged]}
