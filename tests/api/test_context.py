"""The readings context (archives and daily energy from frames): idempotent counting, area ranking, meter view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event

import schemas
from services.api.sink import ContextSink
from services.api.store import context
from services.api.store.session import Store
from tests.api.alerts_factory import alert_record
from tests.api.helpers import api_client, auth, config_for, key_for, put_alerts

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def _archive(area: str, meters: list[str], updated: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    record = {
        "area_id": area, "updated_at": updated, "concentrator_id": f"C{area}",
        "area_meter": {"meter_id": f"T{area}", "multiplier": 40, "rated_kva": 400}, "loss_limit_pct": 8.0,
        "meters": [{"meter_id": m, "customer_class": "residential", "phases": 1, "contracted_kva": 8, "multiplier": 1,
                    "has_generation": False, "status": "active", "nominal_voltage_v": 220, "basic_current_a": 5,
                    "max_current_a": 60, "installed_at": "2025-03-01T00:00:00Z"} for m in meters],
    }  # fmt: skip
    schemas.validator("area_archive").validate(record)
    return record


def _frames(area: str, meters: list[str], kwh: list[float], supplied: float, days: int = 2) -> list[dict[str, Any]]:
    """Hourly frames (24 a day) for ``days`` days: each meter ``kwh[i]``/24 per hour, the area meter ``supplied``/24."""
    out = []
    for h in range(1, 24 * days + 1):
        ts = (T0 + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ")
        n = len(meters)
        frame = {
            "frame_id": f"{area}|{ts}|0", "area_id": area, "ts": ts, "interval_minutes": 60, "revision": 0,
            "closed_by": "complete",
            "area_meter": {"meter_id": f"T{area}", "energy_kwh": supplied / 24, "register_fwd_kwh": None},
            "meters": {"meter_id": meters, "energy_kwh": [k / 24 for k in kwh], "register_fwd_kwh": [None] * n,
                       "register_rev_kwh": [None] * n, **{c: [None] * n for c in (
                           "voltage_a_v", "voltage_b_v", "voltage_c_v", "current_a_a", "current_b_a", "current_c_a",
                           "power_factor", "demand_kw", "clock_offset_s")}},
            "events": [], "missing": [], "conflicts": [], "stats": {"readings": n, "duplicates_dropped": 0},
        }  # fmt: skip
        out.append(frame)
    schemas.validator("area_frame").validate(out[0])
    return out


def test_frames_count_once_and_rank_areas(store: Store) -> None:
    a_meters, b_meters = ["M-A1", "M-A2"], ["M-B1", "M-B2"]
    frames = _frames("A1", a_meters, [10.0, 20.0], 40.0) + _frames("B1", b_meters, [10.0, 10.0], 21.0)
    with store.write() as s:
        assert context.apply_archive(s, _archive("A1", a_meters))
        assert context.apply_archive(s, _archive("B1", b_meters))
        assert not context.apply_archive(s, _archive("B1", b_meters))  # not newer: ignored
        assert context.apply_frames(s, frames) == len(frames) * 3
    with store.write() as s:
        assert context.apply_frames(s, frames) == 0  # a replay counts nothing
    with store.read() as s:
        ranking = context.area_ranking(s)
        days = context.subject_days(s, "meter", "M-A2", T0.date(), T0.date() + timedelta(days=5))
    assert [r["area_id"] for r in ranking] == ["A1", "B1"]
    top = ranking[0]
    assert (top["supplied_kwh"], top["consumed_kwh"], top["loss_rate_pct"], top["coverage_pct"]) == (40.0, 30.0, 25.0, 100.0)
    assert (top["active_meters"], top["loss_limit_pct"]) == (2, 8.0)
    assert [(d["kwh"], d["coverage"]) for d in days] == [(20.0, 1.0), (20.0, 1.0)]


def test_meter_view_and_alert_detail_show_readings(sqlite_url: str) -> None:
    meters = ["M0003-0042"]
    with api_client(sqlite_url) as c:
        store = c.app.state.store  # type: ignore[attr-defined]
        with store.write() as s:
            context.apply_archive(s, _archive("A0003", meters))
            context.apply_frames(s, _frames("A0003", meters, [12.0], 13.0, days=3))
        put_alerts(c, alert_record("M0003-0042", first_seen="2026-01-07T00:00:00Z", last_seen="2026-01-08T00:00:00Z"))
        viewer = auth(key_for(c, "viewer", "v"))
        view = c.get("/api/v1/meters/M0003-0042", headers=viewer).json()
        assert view["archive"]["customer_class"] == "residential" and view["area_id"] == "A0003"
        assert view["latest"]["kwh"] == 12.0 and len(view["open_alerts"]) == 1
        assert c.get("/api/v1/meters/NOPE", headers=viewer).status_code == 404
        alert_id = view["open_alerts"][0]["id"]
        readings = c.get(f"/api/v1/alerts/{alert_id}", headers=viewer).json()["readings"]
        assert readings["baseline_kwh_day"] == 12.0 and readings["baseline_days"] == 2
        assert [d["day"] for d in readings["days"]] == ["2026-01-05", "2026-01-06", "2026-01-07"]
        ranking = c.get("/api/v1/areas/ranking", headers=viewer).json()["items"]
        assert ranking[0]["area_id"] == "A0003" and ranking[0]["open_alerts"] == 1


def test_the_context_sink_writes_a_batch_in_short_transactions_and_a_replay_counts_nothing(store: Store) -> None:
    """Frames of 2 meters, 5 cells a transaction: 48 × 2 frames + 2 archives need 1 + 96 / 2 transactions."""
    meters = {"A1": ["M-A1", "M-A2"], "B1": ["M-B1", "M-B2"]}
    records: list[tuple[str, dict[str, Any]]] = [("archive", _archive(a, m)) for a, m in meters.items()]
    for area, ms in meters.items():
        records += [("frame", f) for f in _frames(area, ms, [24.0, 48.0], 80.0)]
    sink = ContextSink(store, config_for(store.url, context_cells_per_transaction=5))
    commits: list[int] = []
    listener = lambda _conn: commits.append(1)  # noqa: E731
    event.listen(store.engine, "commit", listener)
    try:
        sink.apply(records)
        assert len(commits) == 1 + 96 // 2  # the archives (4 meters), then two frames (4 readings) at a time
        sink.apply(records)  # a crash after some transactions replays the batch: nothing counts twice
    finally:
        event.remove(store.engine, "commit", listener)
    with store.read() as s:
        days = context.subject_days(s, "meter", "M-A2", T0.date(), T0.date() + timedelta(days=5))
    assert [(d["kwh"], d["coverage"]) for d in days] == [(48.0, 1.0), (48.0, 1.0)]


def test_an_interval_counts_its_first_value_within_a_batch_and_across_batches(store: Store) -> None:
    """Frames of one meter: a day's row is made by one batch and added to by the next; a second delivery
    of an interval with another value (inside one batch, or a later one) is not counted."""
    first, second = _frames("A1", ["M-A1"], [24.0], 48.0, days=1)[:12], _frames("A1", ["M-A1"], [24.0], 48.0, days=1)[12:]
    changed = {**second[0], "meters": {**second[0]["meters"], "energy_kwh": [99.0]}}
    with store.write() as s:
        context.apply_archive(s, _archive("A1", ["M-A1"]))
        assert context.apply_frames(s, first + [first[0]]) == 12 * 2  # meter and area meter; the repeat is not new
    with store.write() as s:
        assert context.apply_frames(s, second[:1] + [changed] + second[1:]) == 12 * 2
    with store.write() as s:
        assert context.apply_frames(s, [changed]) == 0
    with store.read() as s:
        (day,) = context.subject_days(s, "meter", "M-A1", T0.date(), T0.date())
        (area,) = context.subject_days(s, "area", "A1", T0.date(), T0.date())
    assert (day["kwh"], day["coverage"]) == (24.0, 1.0)  # the 99 kWh second delivery counted nowhere
    assert (area["kwh"], area["coverage"]) == (48.0, 1.0)
