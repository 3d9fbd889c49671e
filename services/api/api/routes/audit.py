"""``/api/v1/audit`` (operator, admin): every change, who made it, when, before and after."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from services.api.api.deps import Operator, StoreDep
from services.api.api.models import AuditPage, Timestamp
from services.api.api.responses import AUTH, INVALID
from services.api.store.reports import audit_page

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=AuditPage, responses={**AUTH, **INVALID}, summary="The audit log, newest first")
def audit_log(
    store: StoreDep,
    _: Operator,
    entity_kind: Literal["alert", "inspection", "api_key"] | None = None,
    entity_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    actor: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    action: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    since: Timestamp | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> Any:
    with store.read() as session:
        items, next_cursor = audit_page(
            session, entity_kind=entity_kind, entity_id=entity_id, actor=actor, action=action,
            since=since, limit=limit, cursor=cursor,
        )  # fmt: skip
    return {"items": items, "next_cursor": next_cursor}
