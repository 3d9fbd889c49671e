"""The HTTP API end to end in-process (TestClient): roles, the inspection loop, polling, limits, reports."""

from __future__ import annotations

import csv
import io

import pytest

import schemas
from tests.api.alerts_factory import alert_record, day
from tests.api.helpers import api_client, auth, key_for, put_alerts

THEFT = alert_record("M0003-0042", evidence={"baseline_kwh_day": 11.2, "observed_kwh_day": 3.1, "contributions": {"sustained_drop": 0.5}})
STOPPED = alert_record("M0001-0002", "meter_stopped", area_id="A0001", severity="medium", score=0.6)
HIGH_LOSS = alert_record(type_="area_high_loss", area_id="A0003", evidence={"loss_rate_pct": 14.2, "coverage_pct": 99.0})


def test_keys_and_roles(sqlite_url: str) -> None:
    """No key 401 everywhere under /api/v1; a viewer cannot triage or dispatch (403); an inspector sees no alert list."""
    with api_client(sqlite_url) as c:
        put_alerts(c, THEFT)
        aid = THEFT["alert_id"]
        for path in c.app.openapi()["paths"]:  # type: ignore[attr-defined]
            if path.startswith("/api/v1"):
                url = path.replace("{alert_id}", aid).replace("{inspection_id}", "INS-2026-000001")
                url = url.replace("{meter_id}", "M1").replace("{key_id}", "0" * 12)
                assert c.get(url).status_code in (401, 405), path
        assert c.get("/api/v1/alerts", headers=auth("amw_000000000000_nope")).status_code == 401
        assert c.get("/healthz").status_code == 200
        assert c.get("/metrics").status_code == 200
        assert c.get("/readyz").status_code == 503  # no Kafka at 127.0.0.1:1: not ready, and says why
        assert c.get("/readyz").json()["checks"]["kafka"]["ok"] is False

        viewer, inspector = key_for(c, "viewer", "dash-1"), key_for(c, "inspector", "insp-li")
        assert c.get("/api/v1/alerts", headers=auth(viewer)).status_code == 200
        r = c.post(f"/api/v1/alerts/{aid}/acknowledge", headers=auth(viewer))
        assert r.status_code == 403 and "viewer" in r.json()["detail"]
        assert c.post("/api/v1/inspections", headers=auth(viewer),
                      json={"alert_ids": [aid], "inspector": "insp-li", "due": day(3)}).status_code == 403  # fmt: skip
        assert c.get("/api/v1/keys", headers=auth(viewer)).status_code == 403
        assert c.get("/api/v1/alerts", headers=auth(inspector)).status_code == 403
        assert c.get(f"/api/v1/alerts/{aid}", headers=auth(inspector)).status_code == 404  # not linked to its inspections

        admin = key_for(c, "admin", "root")
        r = c.post("/api/v1/keys", headers=auth(admin), json={"role": "operator", "name": "op-zhang"})
        assert r.status_code == 201
        operator = r.json()["key"]
        assert c.post(f"/api/v1/alerts/{aid}/acknowledge", headers=auth(operator)).json()["status"] == "acknowledged"
        listed = c.get("/api/v1/keys", headers=auth(admin)).json()
        assert all("key" not in k and "secret_hash" not in k for k in listed)
        assert c.delete(f"/api/v1/keys/{r.json()['id']}", headers=auth(admin)).status_code == 200
        assert c.get("/api/v1/alerts", headers=auth(operator)).status_code == 401  # revoked


def test_inspection_loop(database_url: str) -> None:
    """Dispatch → the inspector's queue → accepted → on site → resolved → appeal; 409s; audit; report; webhook events."""
    with api_client(database_url) as c:
        put_alerts(c, THEFT, STOPPED, HIGH_LOSS)
        operator, viewer = key_for(c, "operator", "op-zhang"), key_for(c, "viewer", "dash")
        li, wang = key_for(c, "inspector", "insp-li"), key_for(c, "inspector", "insp-wang")
        aid = THEFT["alert_id"]

        r = c.get("/api/v1/alerts", params={"type": "theft_suspected"}, headers=auth(viewer))
        assert r.status_code == 200
        page = r.json()
        assert [i["id"] for i in page["items"]] == [aid] and "next_cursor" in page
        item = page["items"][0]
        for k in ("id", "type", "subject_kind", "subject_id", "area_id", "severity", "status", "score", "first_seen", "last_seen", "evidence"):
            assert k in item

        r = c.post("/api/v1/inspections", headers=auth(operator), json={"alert_ids": [aid], "inspector": "insp-li", "due": day(3)})
        assert r.status_code == 201, r.text
        ins = r.json()
        schemas.validator("inspection").validate(ins)
        iid = ins["id"]
        assert ins["status"] == "dispatched"
        assert c.get(f"/api/v1/alerts/{aid}", headers=auth(viewer)).json()["status"] == "acknowledged"

        queue = c.get("/api/v1/inspections/queue", headers=auth(li)).json()["items"]
        assert [q["id"] for q in queue] == [iid]
        assert c.get("/api/v1/inspections/queue", headers=auth(wang)).json()["items"] == []
        assert c.get(f"/api/v1/inspections/{iid}", headers=auth(wang)).status_code == 404
        assert c.get("/api/v1/inspections", headers=auth(wang)).json()["items"] == []
        assert c.post(f"/api/v1/inspections/{iid}/transitions", headers=auth(wang), json={"status": "accepted"}).status_code == 404
        assert c.get(f"/api/v1/alerts/{aid}", headers=auth(li)).status_code == 200  # its inspection's alert

        move = lambda key, body: c.post(f"/api/v1/inspections/{iid}/transitions", headers=auth(key), json=body)  # noqa: E731
        assert move(li, {"status": "on_site"}).status_code == 409  # skipping accepted
        assert move(operator, {"status": "accepted"}).status_code == 403  # only the inspector moves it forward
        assert move(li, {"status": "accepted"}).json()["status"] == "accepted"
        assert move(li, {"status": "on_site"}).json()["status"] == "on_site"
        r = move(li, {"status": "resolved", "result": "confirmed_theft"})
        assert r.status_code == 422 and "energy_to_recover_kwh" in r.text
        r = move(li, {"status": "resolved", "result": "confirmed_theft", "energy_to_recover_kwh": 1380.5, "notes": "bypass wire"})
        assert r.status_code == 200, r.text
        done = r.json()
        schemas.validator("inspection").validate(done)
        assert (done["result"], done["energy_to_recover_kwh"], done["notes"]) == ("confirmed_theft", 1380.5, "bypass wire")
        assert move(operator, {"status": "cancelled"}).status_code == 409  # resolved is final
        assert c.get("/api/v1/inspections/queue", headers=auth(li)).json()["items"] == []

        assert c.post(f"/api/v1/inspections/{iid}/appeal/decision", headers=auth(operator), json={"outcome": "upheld"}).status_code == 409
        r = c.post(f"/api/v1/inspections/{iid}/appeal", headers=auth(operator), json={"notes": "customer disputes"})
        assert r.json()["appeal"]["status"] == "filed"
        assert c.post(f"/api/v1/inspections/{iid}/appeal", headers=auth(operator), json={}).status_code == 409
        r = c.post(f"/api/v1/inspections/{iid}/appeal/decision", headers=auth(operator), json={"outcome": "upheld", "notes": "photos"})
        appealed = r.json()
        schemas.validator("inspection").validate(appealed)
        assert appealed["appeal"]["status"] == "upheld" and appealed["appeal"]["decided_at"]

        detail = c.get(f"/api/v1/alerts/{aid}", headers=auth(viewer)).json()
        assert [i["id"] for i in detail["inspections"]] == [iid]
        assert detail["readings"]["detector_baseline_kwh_day"] == 11.2

        audit = c.get("/api/v1/audit", params={"entity_kind": "inspection", "entity_id": iid}, headers=auth(operator)).json()["items"]
        actions = [e["action"] for e in reversed(audit)]
        assert actions == ["inspection.dispatch", "inspection.accepted", "inspection.on_site", "inspection.resolved",
                           "inspection.appeal_filed", "inspection.appeal_decided"]  # fmt: skip
        resolved = next(e for e in audit if e["action"] == "inspection.resolved")
        assert (resolved["actor"], resolved["before"]["status"], resolved["after"]["status"]) == ("insp-li", "on_site", "resolved")
        assert c.get("/api/v1/audit", headers=auth(viewer)).status_code == 403

        month = c.get("/api/v1/reports/monthly", params={"start": "2026-01"}, headers=auth(viewer)).json()
        jan = month["periods"][0]
        theft = next(t for t in jan["by_type"] if t["type"] == "theft_suspected")
        assert (theft["alerts"], theft["confirmed"], theft["confirmed_rate"], theft["recovered_kwh"]) == (1, 1, 1.0, 1380.5)
        assert jan["recovered_kwh"] == 1380.5
        assert jan["high_loss_areas"][0].items() >= {"area_id": "A0003", "max_loss_rate_pct": 14.2, "trend": "new"}.items()
        r = c.get("/api/v1/reports/monthly", params={"start": "2026-01", "format": "csv"}, headers=auth(viewer))
        assert r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert {"row": "type", "key": "theft_suspected", "confirmed": "1"}.items() <= next(x for x in rows if x["key"] == "theft_suspected").items()
        daily = c.get("/api/v1/reports/daily", params={"start": "2026-01-12", "end": "2026-01-14"}, headers=auth(viewer)).json()
        assert [p["alerts"] for p in daily["periods"]] == [0, 3, 0]

        summary = c.get("/api/v1/summary", headers=auth(viewer)).json()
        assert summary["total"] == 3 and summary["by_type"]["theft_suspected"] == 1 and summary["by_area"]["A0003"] == 2

        with c.app.state.store.read() as s:  # type: ignore[attr-defined]
            from sqlalchemy import select

            from services.api.store.models import OutboxMessage

            events = [m.event for m in s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]
        assert events == ["inspection.dispatched", "inspection.accepted", "inspection.on_site", "inspection.resolved",
                          "inspection.appeal_filed", "inspection.appeal_decided"]  # fmt: skip


def test_dashboard_polling_with_changed_since_and_etag(database_url: str) -> None:
    with api_client(database_url) as c:
        put_alerts(c, THEFT, STOPPED)
        viewer, operator = key_for(c, "viewer", "dash"), key_for(c, "operator", "op")
        first = c.get("/api/v1/alerts", headers=auth(viewer))
        tag, token = first.headers["etag"], first.json()["sync_token"]
        assert len(first.json()["items"]) == 2

        poll = lambda: c.get("/api/v1/alerts", params={"changed_since": token}, headers={**auth(viewer), "If-None-Match": tag})  # noqa: E731
        assert poll().status_code == 304  # nothing changed
        c.post(f"/api/v1/alerts/{STOPPED['alert_id']}/dismiss", headers=auth(operator), json={"reason": "meter replaced"})
        r = poll()
        assert r.status_code == 200
        assert [(i["id"], i["status"]) for i in r.json()["items"]] == [(STOPPED["alert_id"], "dismissed")]
        tag, token = r.headers["etag"], r.json()["sync_token"]
        assert poll().status_code == 304
        put_alerts(c, {**THEFT, "op": "update", "last_seen": day(2), "score": 0.97}, start=2)  # the detector updates
        r = poll()
        assert [(i["id"], i["score"]) for i in r.json()["items"]] == [(THEFT["alert_id"], 0.97)]
        tag, token = r.headers["etag"], r.json()["sync_token"]
        put_alerts(c, THEFT, STOPPED)  # a replay: nothing a client can see changes
        assert poll().status_code == 304
        assert c.get("/api/v1/alerts", params={"changed_since": "garbage"}, headers=auth(viewer)).status_code == 422


def test_limits_and_validation_say_what_is_wrong(sqlite_url: str) -> None:
    with api_client(sqlite_url, max_body_bytes=2048) as c:
        put_alerts(c, THEFT)
        operator = key_for(c, "operator", "op")
        r = c.post(f"/api/v1/alerts/{THEFT['alert_id']}/dismiss", headers=auth(operator), json={"reason": "x" * 5000})
        assert r.status_code == 413 and "2048" in r.json()["detail"]
        r = c.post("/api/v1/inspections", headers=auth(operator), json={"alert_ids": [THEFT["alert_id"]], "inspector": "i", "due": "2026-01-16T09:00:00"})
        assert r.status_code == 422 and "zone" in r.text
        r = c.post("/api/v1/inspections", headers=auth(operator), json={"alert_ids": ["f" * 64], "inspector": "i", "due": day(3)})
        assert r.status_code == 422 and "unknown alert ids" in r.text
        r = c.post("/api/v1/inspections", headers=auth(operator), json={"alert_ids": [THEFT["alert_id"]], "inspector": "i", "due": day(3), "extra": 1})
        assert r.status_code == 422 and "extra" in r.text
        r = c.get("/api/v1/alerts", params={"severity": "huge"}, headers=auth(operator))
        assert r.status_code == 422 and "severity" in r.text
        r = c.post(f"/api/v1/alerts/{THEFT['alert_id']}/dismiss", headers={**auth(operator), "Content-Type": "application/json"}, content=b"{not json")
        assert r.status_code == 422
        c.post(f"/api/v1/alerts/{THEFT['alert_id']}/dismiss", headers=auth(operator), json={"reason": "known"})
        r = c.post("/api/v1/inspections", headers=auth(operator), json={"alert_ids": [THEFT["alert_id"]], "inspector": "i", "due": day(3)})
        assert r.status_code == 409 and "reopen" in r.json()["detail"]


def test_merge_into_a_case(sqlite_url: str) -> None:
    a, b, c3 = alert_record("M1"), alert_record("M1", "tamper_event", severity="medium"), alert_record("M2")
    with api_client(sqlite_url) as c:
        put_alerts(c, a, b, c3)
        operator = key_for(c, "operator", "op")
        r = c.post("/api/v1/alerts/merge", headers=auth(operator), json={"alert_ids": [a["alert_id"], b["alert_id"]]})
        assert r.status_code == 200 and r.json()["case_id"] == a["alert_id"]
        detail = c.get(f"/api/v1/alerts/{a['alert_id']}", headers=auth(operator)).json()
        assert detail["case"] == {"primary": a["alert_id"], "members": [b["alert_id"]]}
        assert c.get(f"/api/v1/alerts/{b['alert_id']}", headers=auth(operator)).json()["status"] == "merged"
        r = c.post("/api/v1/inspections", headers=auth(operator), json={"alert_ids": [b["alert_id"]], "inspector": "i", "due": day(3)})
        assert r.status_code == 409
        assert c.post(f"/api/v1/alerts/{b['alert_id']}/reopen", headers=auth(operator)).json()["status"] == "open"


@pytest.mark.parametrize("path", ["/api/v1/alerts", "/api/v1/summary", "/api/v1/areas/ranking", "/api/v1/inspections"])
def test_empty_store_answers(sqlite_url: str, path: str) -> None:
    with api_client(sqlite_url) as c:
        assert c.get(path, headers=auth(key_for(c, "viewer", "v"))).status_code == 200
