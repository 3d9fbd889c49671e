"""Request and response bodies of the HTTP API (pydantic), with the examples the OpenAPI document shows.

Bodies are closed (``extra="forbid"``): a field the API does not know is a
422 naming it, not silently ignored. Strings and lists have upper bounds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import re

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

__all__ = [
    "Id", "AlertId", "Timestamp", "AlertOut", "AlertPage", "AlertDetail", "DismissIn", "MergeIn", "MergeOut",
    "InspectionOut", "InspectionPage", "DispatchIn", "TransitionIn", "NotesIn", "AppealIn", "AppealDecisionIn",
    "Summary", "AreaRanking", "MeterView", "KeyIn", "KeyOut", "KeyCreated", "AuditPage", "Problem", "Report",
]  # fmt: skip

Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\s|]+$")]
AlertId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Note = Annotated[str, StringConstraints(max_length=4000)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=1000, strip_whitespace=True)]

ALERT_ID = "ccad0393f24a16addfde32edf05d771bbd8a1055a6c89344a601d6861f3c5d06"
ALERT_ID_2 = "5b0c2d8e3f8a4b6f9e1d7c3a2b4e6f8a0c1d3e5f7a9b2c4d6e8f0a1b3c5d7e9f"


_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}:?\d{2})?$")


def _iso_text(value: object) -> object:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO.match(value):
        raise ValueError("a time is ISO 8601 text in UTC, e.g. 2026-01-16T09:00:00Z")
    return value


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a time must carry its zone: UTC with Z, e.g. 2026-01-16T09:00:00Z")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_iso_text), AfterValidator(_utc)]
"""An ISO 8601 time with its zone (numbers are not taken for unix times)."""


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """What is wrong with a request (every 4xx)."""

    detail: Any = Field(description="A sentence, or FastAPI's list of field errors for a 422.")
    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": "alert 5b0c… is dismissed: reopen it first"}]})


_ALERT_EXAMPLE = {
    "id": ALERT_ID, "type": "theft_suspected", "subject_kind": "meter", "subject_id": "M0003-0042",
    "area_id": "A0003", "severity": "high", "score": 0.91, "status": "open", "stream_status": "open",
    "triage": None, "case_id": None, "dismiss_reason": None,
    "first_seen": "2026-01-13T00:00:00Z", "last_seen": "2026-01-14T00:00:00Z",
    "evidence": {"baseline_kwh_day": 11.2, "observed_kwh_day": 6.1, "contributions": {"sustained_drop": 0.5}},
    "updated_at": "2026-01-14T00:02:11.5Z", "version": 2,
}  # fmt: skip


class AlertOut(BaseModel):
    """An alert: what the detector says (stream) and what people did with it (triage)."""

    id: str
    type: str
    subject_kind: Literal["meter", "area"]
    subject_id: str
    area_id: str
    severity: Literal["low", "medium", "high", "critical"]
    score: float
    status: Literal["open", "acknowledged", "dismissed", "merged", "resolved"] = Field(
        description="dismissed/merged (a person's decision) > resolved (the detector's) > acknowledged > open"
    )
    stream_status: Literal["open", "resolved"]
    triage: Literal["acknowledged", "dismissed", "merged"] | None
    case_id: str | None = Field(description="The primary alert of the case this alert belongs to, if merged")
    dismiss_reason: str | None
    first_seen: str
    last_seen: str
    evidence: dict[str, Any]
    updated_at: str
    version: int
    model_config = ConfigDict(json_schema_extra={"examples": [_ALERT_EXAMPLE]})


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None = Field(description="Pass as `cursor` (same filters and sort) for the next page; null on the last")
    sync_token: str = Field(description="Pass as `changed_since` to get only what changes after this response")
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [_ALERT_EXAMPLE], "next_cursor": None, "sync_token": "eyJrIjoic3luYyIsInYiOjQyfQ"}]}
    )


class ReadingDay(BaseModel):
    day: str
    kwh: float
    coverage: float = Field(description="Share of the day's intervals that reported")


class Readings(BaseModel):
    days: list[ReadingDay] = Field(description="Daily energy of the subject (kWh; an area: energy its meter supplied)")
    baseline_kwh_day: float | None = Field(description="Median daily kWh of the 28 days before first_seen")
    baseline_days: int
    detector_baseline_kwh_day: float | None = Field(description="The detector's own baseline, from the evidence")


class CaseOut(BaseModel):
    primary: str
    members: list[str]


class AlertDetail(AlertOut):
    readings: Readings
    case: CaseOut | None
    inspections: list[InspectionOut]


class DismissIn(Closed):
    reason: Reason
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "customer on holiday; usage back to normal"}]})


class MergeIn(Closed):
    alert_ids: list[AlertId] = Field(min_length=1, max_length=100)
    into: AlertId | None = Field(default=None, description="The case's primary alert (default: the first of alert_ids)")
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"alert_ids": [ALERT_ID, ALERT_ID_2], "into": ALERT_ID}]})


class MergeOut(BaseModel):
    case_id: str
    items: list[AlertOut]


_INSPECTION_EXAMPLE = {
    "id": "INS-2026-000123", "alert_ids": [ALERT_ID], "inspector": "insp-wang-li", "due": "2026-01-16T09:00:00Z",
    "status": "resolved", "result": "confirmed_theft", "energy_to_recover_kwh": 1380.5,
    "notes": "bypass wire around the meter",
    "appeal": {"status": "filed", "filed_at": "2026-01-18T03:00:00Z", "decided_at": None, "notes": None},
    "created_at": "2026-01-14T02:10:00Z", "updated_at": "2026-01-18T03:00:00Z",
}  # fmt: skip


class AppealOut(BaseModel):
    status: Literal["filed", "upheld", "overturned", "withdrawn"]
    filed_at: str
    decided_at: str | None
    notes: str | None


class InspectionOut(BaseModel):
    """An inspection exactly as `schemas/inspection.json` describes it."""

    id: str
    alert_ids: list[str]
    inspector: str
    due: str
    status: Literal["dispatched", "accepted", "on_site", "resolved", "cancelled"]
    result: Literal["confirmed_theft", "meter_fault", "archive_corrected", "nothing_found", "no_access"] | None
    energy_to_recover_kwh: float | None
    notes: str | None
    appeal: AppealOut | None
    created_at: str
    updated_at: str
    model_config = ConfigDict(json_schema_extra={"examples": [_INSPECTION_EXAMPLE]})


class InspectionPage(BaseModel):
    items: list[InspectionOut]
    next_cursor: str | None


class DispatchIn(Closed):
    alert_ids: list[AlertId] = Field(min_length=1, max_length=100)
    inspector: Id
    due: Timestamp
    notes: Note | None = None
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"alert_ids": [ALERT_ID], "inspector": "insp-wang-li", "due": "2026-01-16T09:00:00Z"}]},
    )


class TransitionIn(Closed):
    status: Literal["accepted", "on_site", "resolved", "cancelled"]
    result: Literal["confirmed_theft", "meter_fault", "archive_corrected", "nothing_found", "no_access"] | None = None
    energy_to_recover_kwh: Annotated[float, Field(ge=0, le=1e9)] | None = None
    notes: Note | None = None
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"status": "accepted"},
                {"status": "resolved", "result": "confirmed_theft", "energy_to_recover_kwh": 1380.5, "notes": "bypass wire around the meter"},
            ]
        },
    )


class NotesIn(Closed):
    notes: Note
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"notes": "customer not at home; neighbour has a key"}]})


class AppealIn(Closed):
    notes: Note | None = None
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"notes": "customer says the wire was the electrician's"}]})


class AppealDecisionIn(Closed):
    outcome: Literal["upheld", "overturned", "withdrawn"]
    notes: Note | None = None
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"outcome": "upheld", "notes": "photos confirm the bypass"}]})


class Summary(BaseModel):
    total: int
    by_type: dict[str, int]
    by_severity: dict[str, int]
    by_status: dict[str, int]
    by_area: dict[str, int]
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{
                "total": 3, "by_type": {"theft_suspected": 2, "area_high_loss": 1},
                "by_severity": {"high": 2, "medium": 1}, "by_status": {"open": 2, "acknowledged": 1},
                "by_area": {"A0003": 3},
            }]
        }
    )  # fmt: skip


class AreaRank(BaseModel):
    area_id: str
    day: str
    supplied_kwh: float
    consumed_kwh: float
    loss_kwh: float
    loss_rate_pct: float | None
    coverage_pct: float = Field(description="Share of the active meters' intervals that reported that day")
    reported_meters: int
    active_meters: int | None
    loss_limit_pct: float | None
    open_alerts: int


class AreaRanking(BaseModel):
    items: list[AreaRank]


class MeterView(BaseModel):
    meter_id: str
    area_id: str | None
    archive: dict[str, Any] | None
    latest: dict[str, Any] | None = Field(description="Latest day's energy, 28-day median and mean, days reported")
    days: list[ReadingDay]
    open_alerts: list[AlertOut]


class KeyIn(Closed):
    role: Literal["viewer", "operator", "inspector", "admin"]
    name: Id = Field(description="Who holds the key; for an inspector, the inspector id inspections are assigned to")
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"role": "inspector", "name": "insp-wang-li"}]})


class KeyOut(BaseModel):
    id: str
    name: str
    role: str
    created_at: str
    created_by: str
    revoked_at: str | None


class KeyCreated(KeyOut):
    key: str = Field(description="The bearer token; shown only in this response")


class AuditOut(BaseModel):
    id: int
    at: str
    actor: str
    role: str
    action: str
    entity_kind: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_cursor: str | None


class TypeRow(BaseModel):
    type: str
    alerts: int
    confirmed: int
    decided: int
    confirmed_rate: float | None
    recovered_kwh: float


class AreaRow(BaseModel):
    area_id: str
    high_loss_alerts: int
    max_loss_rate_pct: float | None
    previous_period_alerts: int
    trend: Literal["rising", "falling", "steady", "new"]


class Period(BaseModel):
    period: str
    start: str
    end: str
    alerts: int
    by_type: list[TypeRow]
    recovered_kwh: float
    high_loss_areas: list[AreaRow]


class Report(BaseModel):
    granularity: Literal["day", "month"]
    periods: list[Period]


AlertDetail.model_rebuild()
