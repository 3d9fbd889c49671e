"""Alerts: applying ``ami.alerts`` records (the sink), triage, listing and polling.

Stream and triage state
-----------------------
The detector owns what an alert *is*: its type, subject, severity, score,
times, evidence and whether it is still open (``stream_status`` ∈ open,
resolved). The API owns what people *did* with it: ``triage`` ∈ {none,
acknowledged, dismissed, merged} (merged: ``case_id`` names the case's
primary alert). A stream record only ever writes stream columns, so triage
survives every later update or resolve of the same alert id; a dismissed
alert stays dismissed when the detector updates it (a new occurrence after a
resolve has a new id and is triaged afresh). The ``status`` the API shows
and filters on is derived from both (:func:`display_status`).

Replays
-------
A record is applied only if it moves the alert forward: records of one alert
id share a partition (the topic is keyed by subject id), so one at or below
the stored ``(src_partition, src_offset)`` is a replay and is skipped; a
record from elsewhere (a re-partitioned or re-created topic) is applied only
if it is not older (resolved beats open, then a later ``last_seen`` wins) and
changes something. A record that changes nothing bumps no sequence number,
version or ETag and writes no audit entry, so replaying the whole topic
changes nothing a client can see.

Polling
-------
Every visible change takes the next value of the ``alert_seq`` counter
(:func:`services.api.store.common.next_counter`, handed out in commit order).
``changed_since=<sync token>`` returns the alerts whose ``seq`` is above it,
oldest change first; list ETags are built from the counter's value, so a
poll with ``If-None-Match`` is answered ``304`` until anything changes.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Select, and_, false, func, or_, select, tuple_
from sqlalchemy.orm import Session

from services.api.store.common import SINK, Actor, Conflict, Invalid, NotFound, audit, next_counter
from services.api.store.models import Alert, Counter, Inspection, InspectionAlert
from services.api.store.types import iso, parse_iso, utcnow

__all__ = [
    "SEVERITIES", "STATUSES", "SORTS", "StreamRecord", "ApplyStats", "AlertFilter", "Page",
    "display_status", "alert_view", "apply_stream", "current_seq", "list_alerts", "get_alert",
    "acknowledge", "dismiss", "reopen", "merge", "encode_token", "decode_token",
]  # fmt: skip

SEVERITIES = ("low", "medium", "high", "critical")
STATUSES = ("open", "acknowledged", "dismissed", "merged", "resolved")
_STREAM_FIELDS = (
    "type", "subject_kind", "subject_id", "area_id", "severity", "score",
    "stream_status", "first_seen", "last_seen", "evidence",
)  # fmt: skip
_TRIAGE_FIELDS = ("triage", "case_id", "dismiss_reason", "status")


def display_status(stream_status: str, triage: str | None) -> str:
    """The status people see: a human decision (dismissed, merged) first, then the stream's resolve,
    then an acknowledgement, else open."""
    if triage in ("dismissed", "merged"):
        return triage
    if stream_status == "resolved":
        return "resolved"
    return triage or "open"


def alert_view(a: Alert) -> dict[str, Any]:
    """The API representation of an alert (list item)."""
    return {
        "id": a.id,
        "type": a.type,
        "subject_kind": a.subject_kind,
        "subject_id": a.subject_id,
        "area_id": a.area_id,
        "severity": a.severity,
        "score": a.score,
        "status": a.status,
        "stream_status": a.stream_status,
        "triage": a.triage,
        "case_id": a.case_id,
        "dismiss_reason": a.dismiss_reason,
        "first_seen": iso(a.first_seen),
        "last_seen": iso(a.last_seen),
        "evidence": a.evidence,
        "updated_at": iso(a.updated_at),
        "version": a.version,
    }


def _snapshot(a: Alert, names: Iterable[str]) -> dict[str, Any]:
    return {n: getattr(a, n) for n in names}


def current_seq(session: Session) -> int:
    """The newest change's sequence number (0 before any)."""
    return int(session.scalar(select(Counter.value).where(Counter.name == "alert_seq")) or 0)


def _bump(session: Session, alerts: Sequence[Alert], now: datetime) -> None:
    """Give each changed alert the next sequence number, a new version and ``updated_at``."""
    if not alerts:
        return
    first = next_counter(session, "alert_seq", len(alerts))
    for i, a in enumerate(alerts):
        a.seq = first + i
        a.updated_at = now


# --- the sink ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One ``ami.alerts`` record (already schema-valid) and where it came from."""

    value: dict[str, Any]
    partition: int
    offset: int


@dataclass(slots=True)
class ApplyStats:
    opened: int = 0
    changed: int = 0
    unchanged: int = 0  # same content again (a replay from another position)
    replayed: int = 0  # at or below the stored offset, or older than what is stored
    changed_ids: list[str] = field(default_factory=list)


def _stream_values(v: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": v["type"],
        "subject_kind": v["subject_kind"],
        "subject_id": v["subject_id"],
        "area_id": v["area_id"],
        "severity": v["severity"],
        "score": float(v["score"]),
        "stream_status": v["status"],
        "first_seen": parse_iso(v["first_seen"]),
        "last_seen": parse_iso(v["last_seen"]),
        "evidence": v["evidence"],
    }


def _order(stream_status: str, last_seen: datetime) -> tuple[int, datetime]:
    return (1 if stream_status == "resolved" else 0, last_seen)


def apply_stream(session: Session, records: Sequence[StreamRecord], now: datetime | None = None) -> ApplyStats:
    """Upsert alert records in order, in the caller's transaction (see the module doc for the rules)."""
    now = now or utcnow()
    stats = ApplyStats()
    ids = sorted({r.value["alert_id"] for r in records})
    rows = session.scalars(select(Alert).where(Alert.id.in_(ids)).order_by(Alert.id).with_for_update())
    alerts: dict[str, Alert] = {a.id: a for a in rows}
    changed: dict[str, Alert] = {}  # in first-change order
    entries: list[tuple[str, str, dict[str, Any] | None, dict[str, Any]]] = []  # one audit entry per applied record
    for r in records:
        aid = r.value["alert_id"]
        new = _stream_values(r.value)
        a = alerts.get(aid)
        if a is None:
            a = Alert(
                id=aid, **new, severity_rank=SEVERITIES.index(new["severity"]),
                src_partition=r.partition, src_offset=r.offset, triage=None,
                status=display_status(new["stream_status"], None), created_at=now, version=1,
            )  # fmt: skip
            session.add(a)
            alerts[aid] = changed[aid] = a
            entries.append(("alert.open", aid, None, {**new, "status": a.status}))
            stats.opened += 1
            continue
        if a.src_partition == r.partition and r.offset <= a.src_offset:
            stats.replayed += 1
            continue
        if _order(new["stream_status"], new["last_seen"]) < _order(a.stream_status, a.last_seen):
            stats.replayed += 1
            continue
        a.src_partition, a.src_offset = r.partition, r.offset
        old = _snapshot(a, _STREAM_FIELDS)
        if old == new:
            stats.unchanged += 1
            continue
        old["status"] = a.status
        for name, value in new.items():
            setattr(a, name, value)
        a.severity_rank = SEVERITIES.index(a.severity)
        a.status = display_status(a.stream_status, a.triage)
        if aid not in changed:
            a.version += 1
            changed[aid] = a
        action = "alert.resolve" if a.stream_status == "resolved" else "alert.update"
        entries.append((action, aid, old, {**new, "status": a.status}))
        stats.changed += 1
    _bump(session, list(changed.values()), now)
    session.flush()
    for action, aid, old, after in entries:
        audit(session, SINK, action, "alert", aid, old, after, at=now)
    stats.changed_ids = list(changed)
    return stats


# --- reading ----------------------------------------------------------------------------------

SORTS = {
    "last_seen": Alert.last_seen,
    "first_seen": Alert.first_seen,
    "score": Alert.score,
    "severity": Alert.severity_rank,
    "updated": Alert.seq,
}


def encode_token(data: dict[str, Any]) -> str:
    """An opaque, URL-safe token (cursors and sync tokens)."""
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")


def decode_token(token: str, kind: str) -> dict[str, Any]:
    """The data of a token of ``kind``; :class:`Invalid` if it is not one."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except Exception as exc:
        raise Invalid(f"malformed {kind} token") from exc
    if not isinstance(data, dict) or data.get("k") != kind:
        raise Invalid(f"not a {kind} token")
    return data


@dataclass(slots=True)
class AlertFilter:
    types: list[str] = field(default_factory=list)
    severities: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    areas: list[str] = field(default_factory=list)
    meters: list[str] = field(default_factory=list)
    subject_ids: list[str] = field(default_factory=list)
    case_id: str | None = None
    since: datetime | None = None  # alert active at or after: last_seen >= since
    until: datetime | None = None  # alert started at or before: first_seen <= until
    min_score: float | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.types:
            query = query.where(Alert.type.in_(self.types))
        if self.severities:
            query = query.where(Alert.severity.in_(self.severities))
        if self.statuses:
            query = query.where(Alert.status.in_(self.statuses))
        if self.areas:
            query = query.where(Alert.area_id.in_(self.areas))
        if self.meters:
            query = query.where(Alert.subject_kind == "meter", Alert.subject_id.in_(self.meters))
        if self.subject_ids:
            query = query.where(Alert.subject_id.in_(self.subject_ids))
        if self.case_id:
            query = query.where(or_(Alert.case_id == self.case_id, Alert.id == self.case_id))
        if self.since is not None:
            query = query.where(Alert.last_seen >= self.since)
        if self.until is not None:
            query = query.where(Alert.first_seen <= self.until)
        if self.min_score is not None:
            query = query.where(Alert.score >= self.min_score)
        return query


@dataclass(slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None
    sync_token: str
    seq: int  # the store's change counter when the page was read (for ETags)


def _cursor_value(a: Alert, sort: str) -> Any:
    value = getattr(a, {"severity": "severity_rank", "updated": "seq"}.get(sort, sort))
    return iso(value) if isinstance(value, datetime) else value


def _cursor_position(key: str, c: dict[str, Any]) -> Any:
    """The sort value a cursor holds, checked (a token is client input)."""
    value, aid = c.get("v"), c.get("id")
    try:
        if not isinstance(aid, str):
            raise TypeError
        if key in ("last_seen", "first_seen"):
            return parse_iso(value)  # type: ignore[arg-type]
        if key == "score" and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if key in ("severity", "updated") and isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError
    except (TypeError, ValueError, AttributeError) as exc:
        raise Invalid("malformed cursor token") from exc


def list_alerts(
    session: Session,
    flt: AlertFilter,
    sort: str = "-last_seen",
    limit: int = 50,
    cursor: str | None = None,
    changed_since: str | None = None,
) -> Page:
    """One page of alerts; with ``changed_since`` only those changed after that sync token, oldest change first."""
    top = current_seq(session)
    query = flt.apply(select(Alert))
    if changed_since is not None:
        since = decode_token(changed_since, "sync").get("v")
        if not isinstance(since, int) or isinstance(since, bool) or since < 0:
            raise Invalid("malformed sync token")
        sort = "updated"
        query = query.where(Alert.seq > since, Alert.seq <= top)
    desc = sort.startswith("-")
    key = sort.lstrip("-")
    if key not in SORTS:
        raise Invalid(f"sort must be one of {', '.join(sorted(SORTS))} (prefix - for descending)")
    column = SORTS[key]
    if cursor is not None:
        c = decode_token(cursor, "cursor")
        if c.get("s") != sort:
            raise Invalid(f"cursor was made for sort={c.get('s')}, not sort={sort}")
        value = _cursor_position(key, c)
        pair = tuple_(column, Alert.id)
        query = query.where(pair < tuple_(value, c["id"]) if desc else pair > tuple_(value, c["id"]))
    order = (column.desc(), Alert.id.desc()) if desc else (column.asc(), Alert.id.asc())
    rows = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = encode_token({"k": "cursor", "s": sort, "v": _cursor_value(last, key), "id": last.id})
    # A truncated change page syncs up to its last item; a complete one up to the counter.
    sync = rows[-1].seq if (more and changed_since is not None) else top
    return Page([alert_view(a) for a in rows], next_cursor, encode_token({"k": "sync", "v": sync}), top)


def get_alert(session: Session, alert_id: str, lock: bool = False) -> Alert:
    query = select(Alert).where(Alert.id == alert_id)
    if lock:
        query = query.with_for_update()
    alert = session.scalar(query)
    if alert is None:
        raise NotFound(f"alert {alert_id} not found")
    return alert


def linked_inspections(session: Session, alert_ids: Sequence[str]) -> list[Inspection]:
    q = (
        select(Inspection)
        .join(InspectionAlert, InspectionAlert.inspection_id == Inspection.id)
        .where(InspectionAlert.alert_id.in_(alert_ids) if alert_ids else false())
        .order_by(Inspection.created_at, Inspection.id)
        .distinct()
    )
    return list(session.scalars(q))


def inspector_may_see(session: Session, alert_id: str, inspector: str) -> bool:
    """Whether an alert is linked to an inspection assigned to ``inspector``."""
    q = (
        select(func.count())
        .select_from(InspectionAlert)
        .join(Inspection, Inspection.id == InspectionAlert.inspection_id)
        .where(InspectionAlert.alert_id == alert_id, Inspection.inspector == inspector)
    )
    return bool(session.scalar(q))


def etag_for(*parts: Any) -> str:
    """A weak ETag over the given parts (query and change counter, or a body)."""
    digest = hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:32]
    return f'W/"{digest}"'


# --- triage -----------------------------------------------------------------------------------


def apply_triage(session: Session, actor: Actor, action: str, changes: list[tuple[Alert, dict[str, Any]]]) -> None:
    now = utcnow()
    for a, values in changes:
        old = _snapshot(a, _TRIAGE_FIELDS)
        for name, value in values.items():
            setattr(a, name, value)
        a.status = display_status(a.stream_status, a.triage)
        a.triaged_by, a.triaged_at = actor.name, now
        a.version += 1
        audit(session, actor, action, "alert", a.id, old, _snapshot(a, _TRIAGE_FIELDS), at=now)
    _bump(session, [a for a, _ in changes], now)


def acknowledge(session: Session, alert_id: str, actor: Actor) -> Alert:
    a = get_alert(session, alert_id, lock=True)
    if a.triage is not None:
        raise Conflict(f"alert {alert_id} is {a.triage}; only an untriaged alert can be acknowledged (reopen it first)")
    apply_triage(session, actor, "alert.acknowledge", [(a, {"triage": "acknowledged"})])
    return a


def dismiss(session: Session, alert_id: str, reason: str, actor: Actor) -> Alert:
    a = get_alert(session, alert_id, lock=True)
    if a.triage in ("dismissed", "merged"):
        raise Conflict(f"alert {alert_id} is {a.triage}; reopen it first")
    apply_triage(session, actor, "alert.dismiss", [(a, {"triage": "dismissed", "dismiss_reason": reason})])
    return a


def reopen(session: Session, alert_id: str, actor: Actor) -> Alert:
    a = get_alert(session, alert_id, lock=True)
    if a.triage is None:
        raise Conflict(f"alert {alert_id} is not triaged; nothing to reopen")
    apply_triage(session, actor, "alert.reopen", [(a, {"triage": None, "case_id": None, "dismiss_reason": None})])
    return a


def merge(session: Session, alert_ids: Sequence[str], into: str | None, actor: Actor) -> list[Alert]:
    """Merge alerts into one case whose primary is ``into`` (default: the first id)."""
    primary_id = into or alert_ids[0]
    wanted = sorted({*alert_ids, primary_id})
    if len(wanted) < 2:
        raise Invalid("merge needs at least two distinct alerts")
    rows = {a.id: a for a in session.scalars(select(Alert).where(Alert.id.in_(wanted)).order_by(Alert.id).with_for_update())}
    missing = [i for i in wanted if i not in rows]
    if missing:
        raise Invalid(f"unknown alert ids: {', '.join(missing)}")
    primary = rows[primary_id]
    if primary.triage in ("dismissed", "merged"):
        raise Conflict(f"alert {primary_id} is {primary.triage} and cannot be a case's primary; reopen it first")
    for a in rows.values():
        if a.id != primary_id and a.triage == "dismissed":
            raise Conflict(f"alert {a.id} is dismissed; reopen it before merging")
        if a.id != primary_id and a.triage == "merged" and a.case_id != primary_id:
            raise Conflict(f"alert {a.id} is already merged into case {a.case_id}; reopen it first")
    changes: list[tuple[Alert, dict[str, Any]]] = []
    if primary.case_id != primary_id or primary.triage is None:
        changes.append((primary, {"case_id": primary_id, "triage": primary.triage or "acknowledged"}))
    members = [a for a in rows.values() if a.id != primary_id and not (a.triage == "merged" and a.case_id == primary_id)]
    # Members that were themselves a case's primary bring their case along.
    old_cases = [m.id for m in members]
    followers = list(
        session.scalars(
            select(Alert)
            .where(and_(Alert.case_id.in_(old_cases), Alert.triage == "merged", Alert.id.not_in(wanted)))
            .order_by(Alert.id)
            .with_for_update()
        )
    ) if old_cases else []
    for m in [*members, *followers]:
        changes.append((m, {"triage": "merged", "case_id": primary_id, "dismiss_reason": None}))
    if not changes:
        raise Conflict("these alerts are already one case")
    apply_triage(session, actor, "alert.merge", changes)
    return [primary, *members, *followers]
