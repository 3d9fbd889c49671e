"""The alert sink and the API on the real broker, on SQLite and PostgreSQL.

- Replaying the whole alert topic into the store (a second group from the
  earliest offset) changes nothing: same rows, same sequence counter, same
  audit log.
- SIGKILL of ``amiwatch api serve`` in the middle of consumption, then a
  restart, loses no alert and applies none twice (the audit log has exactly
  one entry per record).
- End to end over HTTP against that server: a bypass theft alert is listed
  by ``GET /api/v1/alerts?type=theft_suspected``, an operator dispatches it,
  the inspector sees it in its queue and records the result, the monthly
  report counts it; a viewer gets 403 for triage, another inspector 404 for
  the inspection, no key 401.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import func, select

from amiwatch.kafka.clients import sync_producer
from amiwatch.settings import Topics
from services.api.store import alerts as repo
from services.api.store.models import Alert, AuditEntry
from services.api.store.session import Store
from tests.api.alerts_factory import alert_record, day
from tests.conftest import free_ports

AMIWATCH = [sys.executable, "-m", "amiwatch.cli"]
TYPES = ("meter_stopped", "consumption_swing", "over_capacity", "clock_skew")


def _stream(n_alerts: int) -> list[dict[str, Any]]:
    """Records of ``n_alerts`` alerts: open, two updates, and a resolve for every third; alert 0 is a bypass theft."""
    out: list[dict[str, Any]] = []
    for i in range(n_alerts):
        if i == 0:
            base = alert_record("M0003-0042", "theft_suspected", area_id="A0003", score=0.82, evidence={
                "variant_hint": "bypass", "baseline_kwh_day": 11.2, "observed_kwh_day": 2.4, "cusum": 9.1,
                "contributions": {"sustained_drop": 0.5, "area_loss": 0.4},
                "loss_attribution": {"score": 0.9, "r": 0.93, "beta": 0.97, "deficit_kwh_day": 8.8}})  # fmt: skip
        else:
            base = alert_record(f"M{i:04d}", TYPES[i % len(TYPES)], area_id=f"A{i % 5:04d}", severity="medium", score=0.5)
        out.append(base)
        out.append({**base, "op": "update", "last_seen": day(1), "score": round(base["score"] + 0.05, 3)})
        out.append({**base, "op": "update", "last_seen": day(2), "score": round(base["score"] + 0.1, 3)})
        if i % 3 == 2:
            out.append({**base, "op": "resolve", "status": "resolved", "last_seen": day(3), "score": round(base["score"] + 0.1, 3)})
    return out


def _produce(bootstrap: str, topics: Topics, records: list[dict[str, Any]], pause_every: int = 0, pause_s: float = 0.0) -> None:
    producer = sync_producer(bootstrap)
    try:
        for n, r in enumerate(records, 1):
            producer.send(topics.alerts, key=r["subject_id"].encode(), value=orjson.dumps(r))
            if pause_every and n % pause_every == 0:
                producer.flush()
                time.sleep(pause_s)
        producer.flush()
    finally:
        producer.close()


def _expected(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["alert_id"]: r for r in records}  # the last record of each alert is its state


def _snapshot(url: str) -> tuple[int, int, list[tuple[Any, ...]]]:
    store = Store(url)
    try:
        with store.read() as s:
            rows = [(a.id, a.stream_status, a.last_seen, a.score, a.seq, a.version) for a in s.scalars(select(Alert).order_by(Alert.id))]
            return repo.current_seq(s), s.scalar(select(func.count()).select_from(AuditEntry)) or 0, rows
    finally:
        store.dispose()


def _check_state(url: str, records: list[dict[str, Any]]) -> None:
    expected = _expected(records)
    store = Store(url)
    try:
        with store.read() as s:
            got = {a.id: a for a in s.scalars(select(Alert))}
            audits = s.scalar(select(func.count()).select_from(AuditEntry))
    finally:
        store.dispose()
    assert set(got) == set(expected)
    for aid, r in expected.items():
        a = got[aid]
        assert (a.stream_status, a.score, a.last_seen.strftime("%Y-%m-%dT%H:%M:%SZ")) == (r["status"], r["score"], r["last_seen"])
    assert audits == len(records)  # one entry per record: nothing applied twice, nothing lost


def _env(kafka_env: dict[str, str], url: str, **extra: str) -> dict[str, str]:
    return {**kafka_env, "AMIWATCH_DATABASE_URL": url, **extra}


def test_replaying_the_topic_changes_nothing(kafka_bootstrap: str, kafka_topics: Topics, kafka_env: dict[str, str], database_url: str) -> None:
    records = _stream(60)
    _produce(kafka_bootstrap, kafka_topics, records)
    env = _env(kafka_env, database_url)
    sink = [*AMIWATCH, "api", "sink", "--alerts-only", "--exit-when-idle", "1.5", "--max-batch", "50"]
    first = subprocess.run(sink, env={**env, "AMIWATCH_API_SINK_GROUP": "g1"}, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr[-3000:]
    _check_state(database_url, records)
    before = _snapshot(database_url)
    replay = subprocess.run(sink, env={**env, "AMIWATCH_API_SINK_GROUP": "g2"}, capture_output=True, text=True, timeout=120)
    assert replay.returncode == 0, replay.stderr[-3000:]
    assert _snapshot(database_url) == before


class Server:
    """``amiwatch api serve`` as a child process on a free port."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_ports(1)[0]
        self.env = {**env, "AMIWATCH_API_PORT": str(self.port)}
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([*AMIWATCH, "api", "serve"], env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("api serve did not come up:\n" + self.log.read_text()[-3000:])

    def kill(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(30)


def _count(url: str) -> int:
    store = Store(url)
    try:
        with store.read() as s:
            return s.scalar(select(func.count()).select_from(AuditEntry)) or 0
    finally:
        store.dispose()


def _key(env: dict[str, str], role: str, name: str) -> dict[str, str]:
    out = subprocess.run([*AMIWATCH, "api", "create-key", "--role", role, "--name", name], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return {"Authorization": f"Bearer {out.stdout.strip()}"}


def test_sigkill_loses_nothing_and_the_loop_works_end_to_end(
    kafka_bootstrap: str, kafka_topics: Topics, kafka_env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    records = _stream(90)
    env = _env(kafka_env, database_url, AMIWATCH_API_SINK_MAX_BATCH="20")
    server = Server(env, tmp_path / "api.log")
    t0 = time.monotonic()
    server.start()
    print(f"serve up after {time.monotonic() - t0:.1f} s", file=sys.stderr)
    producer = threading.Thread(target=_produce, args=(kafka_bootstrap, kafka_topics, records, 30, 0.2))
    producer.start()
    try:
        deadline = time.monotonic() + 60
        while _count(database_url) < 40:  # consuming, far from done
            assert time.monotonic() < deadline, server.log.read_text()[-3000:]
            time.sleep(0.05)
        server.kill(signal.SIGKILL)
        killed_at = _count(database_url)
        print(f"SIGKILL at {killed_at} of {len(records)} records after {time.monotonic() - t0:.1f} s", file=sys.stderr)
        assert 0 < killed_at < len(records)
    finally:
        producer.join()
    server.start()
    try:
        deadline = time.monotonic() + 90
        while _count(database_url) < len(records):
            assert time.monotonic() < deadline, f"{_count(database_url)} of {len(records)}\n" + server.log.read_text()[-3000:]
            time.sleep(0.2)
        print(f"all consumed after {time.monotonic() - t0:.1f} s", file=sys.stderr)
        time.sleep(1.0)  # anything applied twice would show up now
        _check_state(database_url, records)

        # End to end over HTTP on the live server.
        theft = records[0]
        api = httpx.Client(base_url=f"{server.base}/api/v1", timeout=10)
        admin = _key(env, "admin", "root")  # the CLI prints a new key once

        def key(role: str, name: str) -> dict[str, str]:
            r = api.post("/keys", headers=admin, json={"role": role, "name": name})
            assert r.status_code == 201, r.text
            return {"Authorization": f"Bearer {r.json()['key']}"}

        viewer, operator, li, wang = key("viewer", "dash"), key("operator", "op-zhang"), key("inspector", "insp-li"), key("inspector", "insp-wang")
        assert api.get("/alerts", params={"type": "theft_suspected"}).status_code == 401
        page = api.get("/alerts", params={"type": "theft_suspected"}, headers=viewer).json()
        assert set(page) >= {"items", "next_cursor"}
        item = next(i for i in page["items"] if i["id"] == theft["alert_id"])
        assert {k: item[k] for k in ("type", "subject_kind", "subject_id", "area_id")} == {
            "type": "theft_suspected", "subject_kind": "meter", "subject_id": "M0003-0042", "area_id": "A0003"}  # fmt: skip
        assert item["evidence"]["loss_attribution"]["r"] == 0.93 and item["status"] == "open"
        assert api.post(f"/alerts/{theft['alert_id']}/acknowledge", headers=viewer).status_code == 403

        r = api.post("/inspections", headers=operator, json={"alert_ids": [theft["alert_id"]], "inspector": "insp-li", "due": day(3)})
        assert r.status_code == 201, r.text
        iid = r.json()["id"]
        assert [q["id"] for q in api.get("/inspections/queue", headers=li).json()["items"]] == [iid]
        assert api.get(f"/inspections/{iid}", headers=wang).status_code == 404
        for body in ({"status": "accepted"}, {"status": "on_site"},
                     {"status": "resolved", "result": "confirmed_theft", "energy_to_recover_kwh": 412.0, "notes": "bypass cable"}):  # fmt: skip
            r = api.post(f"/inspections/{iid}/transitions", headers=li, json=body)
            assert r.status_code == 200, r.text
        report = api.get("/reports/monthly", params={"start": "2026-01"}, headers=viewer).json()
        row = next(t for t in report["periods"][0]["by_type"] if t["type"] == "theft_suspected")
        assert (row["alerts"], row["confirmed"], row["recovered_kwh"]) == (1, 1, 412.0)

        metrics = httpx.get(f"{server.base}/metrics").text
        assert 'amiwatch_api_alerts{status="resolved",type="meter_stopped"}' in metrics
        assert "amiwatch_api_sink_lag_records 0.0" in metrics
        assert 'amiwatch_api_request_duration_seconds_count{method="POST",route="/api/v1/inspections"} 1.0' in metrics
        ready = httpx.get(f"{server.base}/readyz")
        assert ready.status_code == 200, ready.text
    finally:
        server.kill(signal.SIGTERM)
    # uvicorn re-raises SIGTERM after its graceful shutdown (so the exit status says what stopped it)
    assert server.proc is not None and server.proc.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.log.read_text()
