"""``/api/v1/summary``, ``/api/v1/areas/ranking``, ``/api/v1/meters/{meter_id}``: what dashboards show."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from sqlalchemy import func, select

from services.api.api.deps import StoreDep, Viewer
from services.api.api.models import AreaRanking, MeterView, Summary, Timestamp
from services.api.api.responses import AUTH, NOT_FOUND
from services.api.api.routes.alerts import AnomalyType, IdQuery
from services.api.store import alerts as alert_repo
from services.api.store import context
from services.api.store.models import Alert, MeterArchive, MeterDay
from services.api.store.reports import summary as summarise

router = APIRouter(tags=["dashboards"])


@router.get("/summary", response_model=Summary, responses=AUTH, summary="Alert counts by type, severity, status and area")
def summary(
    store: StoreDep,
    _: Viewer,
    type: Annotated[list[AnomalyType] | None, Query(max_length=30)] = None,  # noqa: A002
    area_id: IdQuery = None,
    since: Timestamp | None = None,
    until: Timestamp | None = None,
) -> Any:
    flt = alert_repo.AlertFilter(types=[t.value for t in type or []], areas=list(area_id or []), since=since, until=until)
    with store.read() as session:
        return summarise(session, flt)


@router.get(
    "/areas/ranking", response_model=AreaRanking, responses=AUTH,
    summary="Areas by their latest complete day's line-loss rate, with coverage",
)  # fmt: skip
def area_ranking(store: StoreDep, _: Viewer, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
    with store.read() as session:
        return {"items": context.area_ranking(session, limit)}


@router.get(
    "/meters/{meter_id}", response_model=MeterView, responses={**AUTH, **NOT_FOUND},
    summary="A meter: its archive, latest statistics, recent days and open alerts",
)  # fmt: skip
def meter_view(
    meter_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[^\s|]+$")],
    store: StoreDep,
    _: Viewer,
    days: Annotated[int, Query(ge=1, le=366)] = 35,
) -> Any:
    with store.read() as session:
        archive = session.get(MeterArchive, meter_id)
        alerts = list(
            session.scalars(
                select(Alert)
                .where(Alert.subject_kind == "meter", Alert.subject_id == meter_id)
                .order_by(Alert.last_seen.desc(), Alert.id)
            )
        )
        latest_day = session.scalar(select(func.max(MeterDay.day)).where(MeterDay.meter_id == meter_id))
        if archive is None and not alerts and latest_day is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"meter {meter_id} not found")
        end = latest_day or date.today()
        series = context.subject_days(session, "meter", meter_id, end - timedelta(days=days - 1), end)
        return {
            "meter_id": meter_id,
            "area_id": archive.area_id if archive else (alerts[0].area_id if alerts else None),
            "archive": archive.archive if archive else None,
            "latest": context.meter_latest(series),
            "days": series,
            "open_alerts": [alert_repo.alert_view(a) for a in alerts if a.status in ("open", "acknowledged")],
        }
