"""``/api/v1/reports/{daily,monthly}``: alerts by type, confirmed rate, recovered energy, high-loss areas; JSON or CSV."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse

from services.api.api.deps import StoreDep, Viewer
from services.api.api.models import Report
from services.api.api.responses import AUTH, INVALID, unprocessable
from services.api.store.reports import report, report_csv

router = APIRouter(prefix="/reports", tags=["reports"])

Format = Literal["json", "csv"]
_CSV = {200: {"content": {"text/csv": {"schema": {"type": "string"}, "example": "period,start,end,row,key,alerts,...\n"}},
              "description": "The report (JSON, or CSV with `format=csv` or `Accept: text/csv`)"}}  # fmt: skip


def _respond(request: Request, data: dict[str, Any], fmt: Format | None, name: str) -> Any:
    wants_csv = fmt == "csv" or (fmt is None and "text/csv" in request.headers.get("accept", ""))
    if wants_csv:
        return PlainTextResponse(report_csv(data), media_type="text/csv",
                                 headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})  # fmt: skip
    return data


def _month(text: str, name: str) -> date:
    try:
        year, month = text.split("-")
        return date(int(year), int(month), 1)
    except ValueError as exc:
        raise unprocessable(f"{name} must be a month YYYY-MM, not {text!r}", "query", name) from exc


@router.get("/daily", response_model=Report, responses={**AUTH, **INVALID, **_CSV}, summary="Per-day report")
def daily(
    request: Request,
    store: StoreDep,
    _: Viewer,
    start: Annotated[date, Query(description="first day (UTC), YYYY-MM-DD")],
    end: Annotated[date, Query(description="last day, inclusive")],
    format: Format | None = None,  # noqa: A002
) -> Any:
    if end < start:
        raise unprocessable("end is before start", "query", "end")
    with store.read() as session:
        data = report(session, "day", start, end)
    return _respond(request, data, format, f"amiwatch-daily-{start}-{end}")


@router.get("/monthly", response_model=Report, responses={**AUTH, **INVALID, **_CSV}, summary="Per-month report")
def monthly(
    request: Request,
    store: StoreDep,
    _: Viewer,
    start: Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="first month, YYYY-MM")],
    end: Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="last month (default: start)")] = None,
    format: Format | None = None,  # noqa: A002
) -> Any:
    first, last = _month(start, "start"), _month(end or start, "end")
    if last < first:
        raise unprocessable("end is before start", "query", "end")
    with store.read() as session:
        data = report(session, "month", first, last)
    return _respond(request, data, format, f"amiwatch-monthly-{start}-{end or start}")
