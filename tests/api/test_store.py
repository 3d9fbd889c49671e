"""The store on SQLite and PostgreSQL: migrations, idempotent stream upserts, triage, paging, polling."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select

import pytest
from services.api.store import alerts as repo
from services.api.store.common import Actor, Conflict, Invalid
from services.api.store.migrate import current_revision, head_revision, upgrade
from services.api.store.models import AuditEntry, Base
from services.api.store.session import Store
from services.api.store.types import parse_iso
from tests.api.alerts_factory import alert_record, day

OPERATOR = Actor("op-zhang", "operator")


def _apply(store: Store, *records: dict, partition: int = 0, start: int = 0) -> repo.ApplyStats:
    with store.write() as s:
        return repo.apply_stream(s, [repo.StreamRecord(r, partition, start + i) for i, r in enumerate(records)])


def _state(store: Store) -> tuple[int, int, list[dict]]:
    with store.read() as s:
        page = repo.list_alerts(s, repo.AlertFilter(), limit=1000)
        audits = s.scalar(select(func.count()).select_from(AuditEntry))
        return repo.current_seq(s), audits, page.items


def test_migrations_create_exactly_the_models(store: Store) -> None:
    """The migration chain reaches head and leaves nothing of the models uncreated (or different)."""
    assert current_revision(store) == head_revision()
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    assert upgrade(store) == head_revision()  # idempotent: a migrated database is left alone


def test_replay_changes_nothing(store: Store) -> None:
    """Applying the same records again, from their offsets or from elsewhere, moves no seq and no audit."""
    a = alert_record("M1", last_seen=day(0))
    stream = [
        a,
        {**a, "op": "update", "last_seen": day(1), "score": 0.95},
        alert_record("M2", "meter_stopped", severity="medium", score=0.6),
        {**a, "op": "resolve", "status": "resolved", "last_seen": day(2), "score": 0.95},
    ]
    stats = _apply(store, *stream)
    assert (stats.opened, stats.changed) == (2, 2)
    before = _state(store)
    assert before[0] == 2 and before[1] == 4  # one seq per changed alert and batch, one audit entry per change
    assert _apply(store, *stream).replayed == 4  # same partition and offsets: a replay
    assert _state(store) == before
    _apply(store, *stream, partition=3)  # same content from another partition (re-created topic)
    assert _state(store) == before
    item = next(i for i in before[2] if i["subject_id"] == "M1")
    assert (item["status"], item["stream_status"], item["last_seen"], item["score"]) == ("resolved", "resolved", day(2), 0.95)


def test_stale_record_never_reopens(store: Store) -> None:
    a = alert_record("M1")
    _apply(store, {**a, "op": "resolve", "status": "resolved", "last_seen": day(3)}, partition=1, start=10)
    stats = _apply(store, {**a, "op": "update", "last_seen": day(2)}, partition=2, start=0)
    assert stats.replayed == 1
    with store.read() as s:
        assert repo.get_alert(s, a["alert_id"]).stream_status == "resolved"


def test_triage_survives_stream_updates(store: Store) -> None:
    a, b, c = alert_record("M1"), alert_record("M2"), alert_record("M3")
    _apply(store, a, b, c)
    with store.write() as s:
        repo.dismiss(s, a["alert_id"], "customer on holiday", OPERATOR)
        repo.acknowledge(s, b["alert_id"], OPERATOR)
        repo.merge(s, [c["alert_id"], b["alert_id"]], b["alert_id"], OPERATOR)
    _apply(store, {**a, "op": "update", "last_seen": day(1), "severity": "critical"},
           {**b, "op": "resolve", "status": "resolved", "last_seen": day(1)},
           {**c, "op": "update", "last_seen": day(1)}, start=3)  # fmt: skip
    with store.read() as s:
        got = {x.subject_id: x for x in (repo.get_alert(s, r["alert_id"]) for r in (a, b, c))}
    assert (got["M1"].status, got["M1"].severity, got["M1"].dismiss_reason) == ("dismissed", "critical", "customer on holiday")
    assert (got["M2"].status, got["M2"].triage, got["M2"].case_id) == ("resolved", "acknowledged", b["alert_id"])
    assert (got["M3"].status, got["M3"].case_id) == ("merged", b["alert_id"])


def test_illegal_triage_is_a_conflict(store: Store) -> None:
    a = alert_record("M1")
    _apply(store, a)
    with store.write() as s:
        repo.dismiss(s, a["alert_id"], "duplicate of a known case", OPERATOR)
    for action in (lambda s: repo.acknowledge(s, a["alert_id"], OPERATOR),
                   lambda s: repo.dismiss(s, a["alert_id"], "again", OPERATOR)):  # fmt: skip
        with pytest.raises(Conflict), store.write() as s:
            action(s)
    with store.write() as s:
        assert repo.reopen(s, a["alert_id"], OPERATOR).status == "open"
    with pytest.raises(Conflict), store.write() as s:
        repo.reopen(s, a["alert_id"], OPERATOR)


def test_filters_sorting_and_cursor_pages(store: Store) -> None:
    records = [
        alert_record(f"M{i:02d}", "theft_suspected" if i % 2 else "meter_stopped", area_id=f"A{i % 3}",
                     severity=repo.SEVERITIES[i % 4], score=round(0.05 * i, 2), first_seen=day(i), last_seen=day(i + 1))
        for i in range(1, 15)
    ]  # fmt: skip
    _apply(store, *records)
    with store.read() as s:
        for sort in ("-last_seen", "score", "-severity", "first_seen"):
            seen, cursor = [], None
            while True:
                page = repo.list_alerts(s, repo.AlertFilter(types=["theft_suspected"]), sort=sort, limit=3, cursor=cursor)
                seen += page.items
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            assert len(seen) == 7 and len({i["id"] for i in seen}) == 7
            key = sort.lstrip("-")
            values = [(repo.SEVERITIES.index(i[key]) if key == "severity" else i[key]) for i in seen]
            assert values == sorted(values, reverse=sort.startswith("-"))
        page = repo.list_alerts(s, repo.AlertFilter(areas=["A1"], severities=["medium", "critical"], since=parse_iso(day(9))))
        assert {i["subject_id"] for i in page.items} == {"M13"}  # M01/M07 end too early, M04/M10 are low/high
        page = repo.list_alerts(s, repo.AlertFilter(meters=["M05"]))
        assert [i["subject_id"] for i in page.items] == ["M05"]
        with pytest.raises(Invalid):
            repo.list_alerts(s, repo.AlertFilter(), sort="score", cursor=repo.list_alerts(s, repo.AlertFilter(), limit=1).next_cursor)


def test_changed_since_returns_only_changes(store: Store) -> None:
    a, b = alert_record("M1"), alert_record("M2")
    _apply(store, a, b)
    with store.read() as s:
        first = repo.list_alerts(s, repo.AlertFilter())
    assert len(first.items) == 2
    with store.read() as s:
        assert repo.list_alerts(s, repo.AlertFilter(), changed_since=first.sync_token).items == []
    with store.write() as s:
        repo.acknowledge(s, b["alert_id"], OPERATOR)
    with store.read() as s:
        changes = repo.list_alerts(s, repo.AlertFilter(), changed_since=first.sync_token)
    assert [(i["id"], i["status"]) for i in changes.items] == [(b["alert_id"], "acknowledged")]
    assert changes.seq == first.seq + 1
