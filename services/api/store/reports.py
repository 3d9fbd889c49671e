"""Summary counts, per-day and per-month reports, and the audit log's pages.

Reports are cohorts by data time: a period holds the alerts whose
``first_seen`` falls in it, and what became of them (however long the
inspection took). That is what precision per type (查实率) needs: of the
theft alerts raised in January, how many were confirmed.

- ``confirmed``: the alert's latest resolved inspection found a problem
  (confirmed_theft, meter_fault, archive_corrected) and no appeal overturned it.
- ``decided``: confirmed, or nothing_found, or overturned on appeal, or the
  alert was dismissed. ``confirmed_rate`` = confirmed / decided (null when
  nothing is decided yet; ``no_access`` decides nothing).
- ``recovered_kwh``: energy to recover of confirmed_theft results that stand,
  counted once per inspection, under its first alert's type and period.
- ``high_loss_areas``: areas with ``area_high_loss`` alerts in the period, their
  highest loss rate from the evidence, and the trend against the period before.
"""

from __future__ import annotations

import calendar
import csv
import io
from collections import Counter as Tally
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.api.store.alerts import AlertFilter, decode_token, encode_token
from services.api.store.common import Invalid
from services.api.store.models import Alert, AuditEntry, Inspection, InspectionAlert
from services.api.store.types import iso

__all__ = ["summary", "report", "report_csv", "periods", "audit_page"]

CONFIRMED = ("confirmed_theft", "meter_fault", "archive_corrected")


def summary(session: Session, flt: AlertFilter) -> dict[str, Any]:
    """Alert counts by type, severity, status and area (with the list's filters)."""
    out: dict[str, Any] = {"total": 0}
    for name, column in (("by_type", Alert.type), ("by_severity", Alert.severity), ("by_status", Alert.status), ("by_area", Alert.area_id)):
        rows = session.execute(flt.apply(select(column, func.count()).group_by(column)).order_by(column)).all()
        out[name] = {k: n for k, n in rows}
    out["total"] = sum(out["by_type"].values())
    return out


@dataclass(frozen=True, slots=True)
class Period:
    label: str
    start: datetime
    end: datetime  # exclusive


def periods(granularity: str, first: date, last: date) -> list[Period]:
    """Consecutive days or months from the one holding ``first`` to the one holding ``last``."""
    out: list[Period] = []
    if granularity == "day":
        if (last - first).days > 366:
            raise Invalid("a daily report spans at most 367 days")
        d = first
        while d <= last:
            start = datetime(d.year, d.month, d.day, tzinfo=UTC)
            out.append(Period(d.isoformat(), start, start + timedelta(days=1)))
            d += timedelta(days=1)
        return out
    y, m = first.year, first.month
    while (y, m) <= (last.year, last.month):
        start = datetime(y, m, 1, tzinfo=UTC)
        days = calendar.monthrange(y, m)[1]
        out.append(Period(f"{y:04d}-{m:02d}", start, start + timedelta(days=days)))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        if len(out) > 120:
            raise Invalid("a monthly report spans at most 120 months")
    return out


def _outcomes(session: Session, alert_ids: list[str]) -> tuple[dict[str, str], list[tuple[str, float]]]:
    """Per alert, its decided outcome (confirmed / not); and (first alert id, kWh) of theft recoveries that stand."""
    outcome: dict[str, str] = {}
    recoveries: list[tuple[str, float]] = []
    if not alert_ids:
        return outcome, recoveries
    rows = session.execute(
        select(InspectionAlert.alert_id, InspectionAlert.position, Inspection.id, Inspection.result,
               Inspection.energy_to_recover_kwh, Inspection.appeal_status, Inspection.resolved_at)
        .join(Inspection, Inspection.id == InspectionAlert.inspection_id)
        .where(Inspection.status == "resolved", InspectionAlert.alert_id.in_(alert_ids))
        .order_by(Inspection.resolved_at, Inspection.id)
    )  # fmt: skip
    for aid, position, _iid, result, energy, appeal, _at in rows:
        overturned = appeal == "overturned"
        if result in CONFIRMED and not overturned:
            outcome[aid] = "confirmed"
        elif result == "nothing_found" or (result in CONFIRMED and overturned):
            outcome[aid] = "not_confirmed"
        if position == 0 and result == "confirmed_theft" and not overturned and energy:
            recoveries.append((aid, float(energy)))
    return outcome, recoveries


def report(session: Session, granularity: str, first: date, last: date) -> dict[str, Any]:
    spans = periods(granularity, first, last)
    lo = spans[0].start - (spans[0].end - spans[0].start)  # the period before, for trends
    hi = spans[-1].end
    alerts = list(
        session.execute(
            select(Alert.id, Alert.type, Alert.area_id, Alert.first_seen, Alert.triage, Alert.evidence)
            .where(Alert.first_seen >= lo, Alert.first_seen < hi)
        )
    )
    outcome, recoveries = _outcomes(session, [a.id for a in alerts])
    recovered = defaultdict(float)
    for aid, kwh in recoveries:
        recovered[aid] += kwh
    out_periods = []
    previous_areas: Tally[str] = Tally()
    # the period before the first one, for the first trend
    before_start = lo
    for a in alerts:
        if a.type == "area_high_loss" and before_start <= a.first_seen < spans[0].start:
            previous_areas[a.area_id] += 1
    for p in spans:
        in_p = [a for a in alerts if p.start <= a.first_seen < p.end]
        by_type: dict[str, dict[str, Any]] = {}
        areas: dict[str, dict[str, Any]] = {}
        for a in in_p:
            row = by_type.setdefault(a.type, {"type": a.type, "alerts": 0, "confirmed": 0, "decided": 0, "recovered_kwh": 0.0})
            row["alerts"] += 1
            result = outcome.get(a.id)
            if result == "confirmed":
                row["confirmed"] += 1
                row["decided"] += 1
            elif result == "not_confirmed" or (result is None and a.triage == "dismissed"):
                row["decided"] += 1
            row["recovered_kwh"] += recovered.get(a.id, 0.0)
            if a.type == "area_high_loss":
                area = areas.setdefault(a.area_id, {"area_id": a.area_id, "high_loss_alerts": 0, "max_loss_rate_pct": None})
                area["high_loss_alerts"] += 1
                rate = a.evidence.get("loss_rate_pct") if isinstance(a.evidence, dict) else None
                if isinstance(rate, int | float) and (area["max_loss_rate_pct"] is None or rate > area["max_loss_rate_pct"]):
                    area["max_loss_rate_pct"] = float(rate)
        for row in by_type.values():
            row["confirmed_rate"] = round(row["confirmed"] / row["decided"], 4) if row["decided"] else None
            row["recovered_kwh"] = round(row["recovered_kwh"], 3)
        current: Tally[str] = Tally({k: v["high_loss_alerts"] for k, v in areas.items()})
        for area_id, area in areas.items():
            prev = previous_areas.get(area_id, 0)
            area["previous_period_alerts"] = prev
            n = area["high_loss_alerts"]
            area["trend"] = "new" if prev == 0 else "rising" if n > prev else "falling" if n < prev else "steady"
        previous_areas = current
        out_periods.append({
            "period": p.label, "start": iso(p.start), "end": iso(p.end), "alerts": len(in_p),
            "by_type": sorted(by_type.values(), key=lambda r: r["type"]),
            "recovered_kwh": round(sum(r["recovered_kwh"] for r in by_type.values()), 3),
            "high_loss_areas": sorted(areas.values(), key=lambda r: (-r["high_loss_alerts"], -(r["max_loss_rate_pct"] or 0), r["area_id"])),
        })  # fmt: skip
    return {"granularity": granularity, "periods": out_periods}


CSV_COLUMNS = (
    "period", "start", "end", "row", "key", "alerts", "confirmed", "decided", "confirmed_rate", "recovered_kwh",
    "high_loss_alerts", "max_loss_rate_pct", "previous_period_alerts", "trend",
)  # fmt: skip


def report_csv(data: dict[str, Any]) -> str:
    """The report as one CSV table: a ``total`` row, a ``type`` row per type, an ``area`` row per high-loss area."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for p in data["periods"]:
        base = {"period": p["period"], "start": p["start"], "end": p["end"]}
        w.writerow({**base, "row": "total", "key": "", "alerts": p["alerts"], "recovered_kwh": p["recovered_kwh"]})
        for r in p["by_type"]:
            w.writerow({**base, "row": "type", "key": r["type"], **r})
        for r in p["high_loss_areas"]:
            w.writerow({**base, "row": "area", "key": r["area_id"], **r})
    return buf.getvalue()


def audit_page(
    session: Session, *, entity_kind: str | None, entity_id: str | None, actor: str | None, action: str | None,
    since: datetime | None, limit: int, cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:  # fmt: skip
    """The audit log, newest first."""
    q = select(AuditEntry)
    if entity_kind:
        q = q.where(AuditEntry.entity_kind == entity_kind)
    if entity_id:
        q = q.where(AuditEntry.entity_id == entity_id)
    if actor:
        q = q.where(AuditEntry.actor == actor)
    if action:
        q = q.where(AuditEntry.action == action)
    if since:
        q = q.where(AuditEntry.at >= since)
    if cursor:
        last = decode_token(cursor, "audit").get("id")
        if not isinstance(last, int) or isinstance(last, bool):
            raise Invalid("malformed cursor token")
        q = q.where(AuditEntry.id < last)
    rows = list(session.scalars(q.order_by(AuditEntry.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        {"id": e.id, "at": iso(e.at), "actor": e.actor, "role": e.role, "action": e.action,
         "entity_kind": e.entity_kind, "entity_id": e.entity_id, "before": e.before, "after": e.after}
        for e in rows
    ]  # fmt: skip
    return items, encode_token({"k": "audit", "id": rows[-1].id}) if more else None
