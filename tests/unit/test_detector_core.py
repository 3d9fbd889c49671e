"""The detector library core: frame and archive decoding, thresholds, state bytes, AlertBook, pipeline."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import orjson
import pytest

from schemas import validator
from services.detector.alerts import AlertBook, alert_id
from services.detector.archive import AreaArchive
from services.detector.day import DayView
from services.detector.detectors import DETECTORS, Detector
from services.detector.eventtime import DAY_S, day_start_of_interval, format_ts, parse_ts
from services.detector.findings import Finding
from services.detector.frame import decode_frame
from services.detector.interval import IntervalView
from services.detector.pipeline import PIPELINE_GROUP
from services.detector.state import AreaState, Arrays
from services.detector.thresholds import Thresholds, load_thresholds
from tests.unit.detector_frames import STEP, T0, AreaFeed, frame_record, make_archive, meter

TH = load_thresholds()


class Recorder(Detector):
    """Keeps every view it is shown, and one per-meter array to watch realignment."""

    name: ClassVar[str] = "recorder"

    def __init__(self) -> None:
        self.views: list[IntervalView] = []
        self.days: list[DayView] = []

    def init_state(self, n_meters: int) -> Arrays:
        return {"mark": np.full(n_meters, -1.0, dtype=np.float32), "area_count": np.zeros(1, dtype=np.int64)}

    def on_frame(self, view: IntervalView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        self.views.append(view)
        state["mark"][view.idx] = np.nan_to_num(view.energy_kwh, nan=-2.0)
        state["area_count"][0] += 1
        return []

    def on_day(self, day: DayView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        self.days.append(day)
        return []


def recording_feed(archive: AreaArchive | None = None) -> tuple[AreaFeed, Recorder]:
    rec = Recorder()
    return AreaFeed(archive, detectors=(rec,)), rec


# -- event time, frame, archive ------------------------------------------------------------


def test_event_time_is_utc_and_end_stamped() -> None:
    assert format_ts(parse_ts("2026-01-05T00:15:00Z")) == "2026-01-05T00:15:00Z"
    assert parse_ts("2026-01-05T08:15:00+08:00") == parse_ts("2026-01-05T00:15:00Z")
    assert day_start_of_interval(T0 + DAY_S) == T0  # the 00:00 point closes the previous day
    assert day_start_of_interval(T0 + DAY_S + STEP) == T0 + DAY_S


def test_decode_frame_columns_nulls_and_lists() -> None:
    rec = frame_record(
        T0 + STEP,
        ["M1", "M2"],
        energy_kwh=[0.42, None],
        register_fwd_kwh=[10.5, 20.0],
        voltage_a_v=[229.8, 231.0],
        current_b_a=[None, 2.5],
        events=[("M1", "cover_open", T0 + 500)],
        missing=["M3"],
        conflicts=[{"meter_id": "M2", "field": "energy_kwh", "kept": 0.31, "other": 0.35}],
        area_meter={"meter_id": "T1", "energy_kwh": None, "register_fwd_kwh": 88.5},
    )
    validator("area_frame").validate(rec)
    f = decode_frame(rec)
    assert f.ts == T0 + STEP and f.revision == 0 and f.closed_by == "complete" and f.interval_s == 900 and f.n == 2
    assert f.energy_kwh[0] == 0.42 and np.isnan(f.energy_kwh[1])
    assert f.voltage.shape == (2, 3) and f.voltage[1, 0] == 231.0 and np.isnan(f.voltage[:, 1:]).all()
    assert np.isnan(f.current[0, 1]) and f.current[1, 1] == 2.5
    assert np.isnan(f.register_rev_kwh).all() and np.isnan(f.clock_offset_s).all()  # all-null columns
    del rec["meters"]["clock_offset_s"]  # a column left out decodes as nulls too
    assert np.isnan(decode_frame(rec).clock_offset_s).all()
    assert f.events[0].meter_id == "M1" and f.events[0].at == T0 + 500
    assert f.missing == ("M3",) and f.conflicts[0].other == 0.35
    assert f.area_meter is not None and np.isnan(f.area_meter.energy_kwh) and f.area_meter.register_fwd_kwh == 88.5
    sub = f.take(np.array([1]))
    assert sub.meter_ids == ("M2",) and sub.events == () and len(sub.conflicts) == 1


def test_decode_archive_arrays_and_index() -> None:
    a = make_archive(
        [
            meter("M1"),
            meter("M2", customer_class="industrial", phases=3, multiplier=40, status="closed", has_generation=True),
            meter("M3", customer_class="unknown-class", installed_at="2026-01-02T00:00:00Z"),
        ]
    )
    assert a.n == 3 and a.indices(("M1", "M2", "M3")).tolist() == [0, 1, 2]  # archive order: no lookup
    assert a.indices(["M3", "X", "M1"]).tolist() == [2, -1, 0]
    assert a.multiplier.tolist() == [1.0, 40.0, 1.0] and a.phases.tolist() == [1, 3, 1]
    assert a.active.tolist() == [True, False, True] and a.status[1] == "closed"
    assert a.customer_class.tolist() == [0, 2, -1] and a.has_generation.tolist() == [False, True, False]
    assert a.installed_at[2] == parse_ts("2026-01-02T00:00:00Z")
    assert a.phase_mask(np.array([0, 1])).tolist() == [[True, False, False], [True, True, True]]
    assert a.area_meter_multiplier == 1 and a.loss_limit_pct == 10.0


# -- thresholds -----------------------------------------------------------------------------


def test_thresholds_defaults_cover_the_catalogue() -> None:
    catalogue = [
        "consumption_swing", "sustained_drop", "theft_suspected", "register_decrease", "meter_stopped",
        "meter_flying", "clock_skew", "voltage_loss", "current_loss", "current_imbalance", "reverse_energy",
        "tamper_event", "over_capacity", "low_power_factor", "zero_consumption", "usage_on_inactive",
        "interval_spike", "multiplier_mismatch", "wrong_area", "missing_data", "duplicate_data",
        "area_high_loss", "area_negative_loss", "area_loss_uncomputable",
    ]  # fmt: skip
    for t in catalogue:
        assert TH.severity(t) in ("low", "medium", "high", "critical")
        assert TH.quiet_s(t) > 0
    assert TH.num("clock_skew", "max_offset_s") == 300
    assert TH.num("voltage_loss", "trip_pct_nominal") == 78 and TH.num("voltage_loss", "recover_pct_nominal") == 85
    assert TH.num("area_high_loss", "limit_pct") == 10 and TH.num("area_balance", "min_coverage_pct") == 95
    assert TH.num("missing_data", "min_area_collection_pct") == 98
    for t in catalogue:  # per-day rules need a quiet period longer than a day
        if t in ("consumption_swing", "sustained_drop", "zero_consumption", "area_high_loss", "low_power_factor"):
            assert TH.quiet_s(t) > DAY_S


def test_thresholds_file_class_and_area_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "site.toml"
    path.write_text(
        "[clock_skew]\nmax_offset_s = 120\n"
        "[overrides.class.industrial.low_power_factor]\nlimit = 0.92\n"
        "[overrides.area.A7.low_power_factor]\nlimit = 0.7\n"
        "[overrides.area.A7.area_high_loss]\nlimit_pct = 6\n"
    )
    monkeypatch.setenv("AMIWATCH_THRESHOLDS", str(path))
    th = load_thresholds()
    assert th.num("clock_skew", "max_offset_s") == 120
    codes = np.array([0, 1, 2, 3, -1], dtype=np.int8)
    assert th.per_class("low_power_factor", "limit", codes).tolist() == [0.8, 0.85, 0.92, 0.8, 0.85]
    a7 = th.for_area("A7")
    assert a7 is th.for_area("A7") and a7.for_area("A1").area_id == "A1"
    assert a7.num("area_high_loss", "limit_pct") == 6 and th.num("area_high_loss", "limit_pct") == 10
    assert a7.per_class("low_power_factor", "limit", codes).tolist() == [0.7] * 5  # area beats class
    assert a7.for_area("A1").num("area_high_loss", "limit_pct") == 10


@pytest.mark.parametrize(
    "text",
    [
        "[clock_skew]\nmax_ofset_s = 1\n",  # misspelt key
        "[clock_skw]\nmax_offset_s = 1\n",  # misspelt section
        "[clock_skew]\nmax_offset_s = 'x'\n",  # wrong type
        "[overrides.class.nobility.clock_skew]\nmax_offset_s = 1\n",  # unknown class
    ],
)
def test_thresholds_reject_typos(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError):
        load_thresholds(path)


# -- state ----------------------------------------------------------------------------------


def _feed_day_part(feed: AreaFeed, intervals: int, start: int = T0) -> None:
    n = feed.archive.n
    reg = 100.0 + np.arange(n)
    for k in range(1, intervals + 1):
        reg = reg + 0.25
        feed.push(start + k * STEP, register_fwd_kwh=reg, current_a_a=2.0, voltage_a_v=230.0, power_factor=0.95)


def test_state_round_trip_is_exact() -> None:
    feed = AreaFeed(make_archive(4))
    _feed_day_part(feed, 10)
    feed.push(T0 + 11 * STEP, events=[("M2", "cover_open", T0 + 11 * STEP - 30)], energy_kwh=0.2)
    state = feed.state
    assert len(state.alerts) == 1 and state.events
    data = state.to_bytes()
    back = AreaState.from_bytes(data)
    assert back.to_bytes() == data
    assert (back.area_id, back.meter_ids, back.day_start, back.watermark) == (
        state.area_id, state.meter_ids, state.day_start, state.watermark,
    )  # fmt: skip
    assert back.events == state.events and back.recent_frames == state.recent_frames
    assert back.alerts.to_state() == state.alerts.to_state()
    for name, group in state.groups.items():
        for key, arr in group.items():
            got = back.groups[name][key]
            assert got.dtype == arr.dtype and got.shape == arr.shape
            np.testing.assert_array_equal(got, arr)
    back.groups[PIPELINE_GROUP]["reg_fwd"][0] = 1.0  # writable
    with pytest.raises(ValueError):
        AreaState.from_bytes(b"XXXX" + data[4:])


def _version_1_bytes(state: AreaState) -> bytes:
    """The record as releases before format version 2 wrote it: each array listed with its group,
    whole shape and offset."""
    directory, chunks, offset = [], [], 0
    for name in sorted(state.groups):
        for key in sorted(state.groups[name]):
            raw = np.ascontiguousarray(state.groups[name][key]).tobytes()
            directory.append([name, key, state.groups[name][key].dtype.str, list(state.groups[name][key].shape), offset])
            chunks.append(raw + b"\0" * (-len(raw) % 8))
            offset += len(chunks[-1])
    head = orjson.loads(state.to_bytes()[9:].split(b"\0", 1)[0].rstrip())
    header = orjson.dumps({**head, "arrays": directory})
    pad = -(9 + len(header)) % 8
    return b"".join([struct.pack("<4sBI", b"AMWS", 1, len(header) + pad), header, b" " * pad, *chunks])


def test_state_written_by_format_version_1_is_read() -> None:
    feed = AreaFeed(make_archive(4))
    _feed_day_part(feed, 10)
    state = feed.state
    old = _version_1_bytes(state)
    back = AreaState.from_bytes(old)
    assert back.to_bytes() == state.to_bytes()  # same arrays, same header: rewritten as version 2
    assert len(state.to_bytes()) < len(old) - 15 * sum(len(g) for g in state.groups.values())  # ≥ 15 B an array less


def test_state_fits_the_per_meter_budget() -> None:
    feed = AreaFeed(make_archive(200))
    _feed_day_part(feed, 2)
    per_meter = sum(feed.state.bytes_per_meter().values())
    assert per_meter <= 1024
    assert len(feed.state.to_bytes()) < 200 * per_meter + 12_288  # the header: every array's name, dtype and shape


def test_state_follows_archive_changes() -> None:
    feed, _ = recording_feed(make_archive(3))
    feed.push(T0 + STEP, energy_kwh=[0.1, 0.2, 0.3])
    mark = feed.state.groups["recorder"]["mark"]
    assert mark.tolist() == pytest.approx([0.1, 0.2, 0.3])
    # M2 leaves, M4 joins, M3 moves to the front
    feed.archive = make_archive([meter("M3"), meter("M1"), meter("M4")])
    feed.push(T0 + 2 * STEP, meter_ids=[])
    state = feed.state
    assert state.meter_ids == ("M3", "M1", "M4")
    assert state.groups["recorder"]["mark"].tolist() == pytest.approx([0.3, 0.1, -1.0])
    assert state.groups["recorder"]["area_count"][0] == 2  # area-level arrays carry over
    assert state.groups[PIPELINE_GROUP]["profile"].shape == (3, 96 + 8)  # a day and its grace
    assert np.isclose(state.groups[PIPELINE_GROUP]["profile"][0, 0], 0.3)


def test_state_of_another_release_gets_this_releases_arrays() -> None:
    """A record whose arrays differ from this release's (a dtype changed, an array added) is realigned on its
    next frame: those arrays start from their initial values, every other array keeps its values."""
    feed, _ = recording_feed(make_archive(3))
    feed.push(T0 + STEP, energy_kwh=[0.1, 0.2, 0.3])
    old = AreaState.from_bytes(feed.state.to_bytes())
    core = old.groups[PIPELINE_GROUP]
    core["reg_ts"] = core["reg_ts"].astype(np.int64)  # as an older release kept it
    del old.groups["recorder"]["mark"]  # an array this release added
    feed.state = old
    feed.push(T0 + 2 * STEP, energy_kwh=[0.4, 0.5, 0.6])
    state = feed.state
    assert state.groups[PIPELINE_GROUP]["reg_ts"].dtype == np.uint32
    assert state.groups["recorder"]["mark"].tolist() == pytest.approx([0.4, 0.5, 0.6])
    assert np.isclose(state.groups[PIPELINE_GROUP]["profile"][0, 0], 0.1)  # kept


# -- AlertBook ------------------------------------------------------------------------------


def _finding(
    ts: int, score: float = 0.6, severity: str = "medium", type_: str = "clock_skew", **evidence: Any
) -> Finding:
    return Finding(type_, "meter", "M1", "A1", ts, severity, score, evidence or {"offset_s": 400})


def test_alertbook_open_fold_update_resolve() -> None:
    book = AlertBook()
    [opened] = book.apply([_finding(T0)], TH)
    assert opened["op"] == "open" and opened["status"] == "open"
    assert opened["alert_id"] == alert_id("clock_skew", "meter", "M1", T0)
    assert opened["first_seen"] == opened["last_seen"] == format_ts(T0)
    # repeats that change nothing material fold silently
    assert book.apply([_finding(T0 + STEP, 0.65)], TH) == []
    assert book.apply([_finding(T0 + 2 * STEP, 0.5)], TH) == []
    # score rising by the configured delta, or severity rising, emits an update
    [up] = book.apply([_finding(T0 + 3 * STEP, 0.8, offset_s=900)], TH)
    assert up["op"] == "update" and up["score"] == 0.8 and up["evidence"] == {"offset_s": 900}
    assert up["alert_id"] == opened["alert_id"] and up["first_seen"] == format_ts(T0)
    [up] = book.apply([_finding(T0 + 4 * STEP, 0.1, "high")], TH)
    assert up["severity"] == "high" and up["score"] == 0.8  # running maxima
    # a heartbeat once a day of event time while still seen
    assert book.apply([_finding(T0 + DAY_S)], TH) == []
    [beat] = book.apply([_finding(T0 + 4 * STEP + DAY_S)], TH)
    assert beat["op"] == "update" and beat["last_seen"] == format_ts(T0 + 4 * STEP + DAY_S)
    # quiet for the type's period (event time) → resolve; a new finding opens a new alert
    last = T0 + 4 * STEP + DAY_S
    assert book.expire(last + TH.quiet_s("clock_skew") - 1, TH) == []
    [res] = book.expire(last + TH.quiet_s("clock_skew"), TH)
    assert res["op"] == "resolve" and res["status"] == "resolved" and res["alert_id"] == opened["alert_id"]
    assert len(book) == 0
    [again] = book.apply([_finding(last + 2 * DAY_S)], TH)
    assert again["op"] == "open" and again["alert_id"] != opened["alert_id"]


def test_alertbook_one_record_per_alert_per_call_and_late_findings() -> None:
    book = AlertBook()
    out = book.apply([_finding(T0 + STEP), _finding(T0, 0.9), _finding(T0 + 2 * STEP)], TH)
    assert [r["op"] for r in out] == ["open"]
    assert out[0]["first_seen"] == format_ts(T0 + STEP) and out[0]["last_seen"] == format_ts(T0 + 2 * STEP)
    assert out[0]["score"] == 0.9


def test_alertbook_is_deterministic_and_serialisable() -> None:
    findings = [_finding(T0 + k * STEP, 0.5 + 0.05 * k) for k in range(8)] + [
        Finding("tamper_event", "meter", "M2", "A1", T0 + 3 * STEP, "high", 1.0, {"event": "cover_open"})
    ]
    a, b = AlertBook(), AlertBook()
    out_a = [a.apply([f], TH) for f in findings]
    half = [b.apply([f], TH) for f in findings[:4]]
    b = AlertBook.from_state(b.to_state())  # a restart in the middle
    out_b = half + [b.apply([f], TH) for f in findings[4:]]
    assert out_a == out_b
    assert a.to_state() == b.to_state()
    assert a.expire(T0 + 10 * DAY_S, TH) == b.expire(T0 + 10 * DAY_S, TH)


def test_alertbook_attaches_tamper_to_open_theft_case() -> None:
    book = AlertBook()
    book.apply([_finding(T0, 0.7, "high", "theft_suspected", baseline_kwh_day=11.2)], TH)
    tamper = Finding("tamper_event", "meter", "M1", "A1", T0 + STEP, "high", 1.0, {"event": "magnetic_field"})
    out = book.apply([tamper], TH)
    assert [(r["type"], r["op"]) for r in out] == [("tamper_event", "open"), ("theft_suspected", "update")]
    theft = out[1]["evidence"]
    assert theft["baseline_kwh_day"] == 11.2 and theft["attached"][0]["event"] == "magnetic_field"


# -- pipeline -------------------------------------------------------------------------------


def test_pipeline_closes_the_day_at_midnight_with_a_day_view() -> None:
    feed, rec = recording_feed(make_archive(2))
    profile = np.tile(np.arange(96, dtype=np.float64) / 100, (2, 1))
    profile[1, 10] = np.nan
    profile[1, 95] = np.nan  # M2's last reading comes late, after the next day's first frame
    for k in range(96):  # 00:15 … 24:00 (the 00:00 point of the next day belongs to this day)
        rows = [0] if k in (10, 95) else [0, 1]
        feed.push(
            T0 + (k + 1) * STEP,
            meter_ids=[feed.archive.meter_ids[r] for r in rows],
            energy_kwh=profile[rows, k],
            demand_kw=[[1.0 + k / 96, 2.0][r] for r in rows],
            power_factor=[[0.9, 0.8][r] for r in rows],
            current_a_a=[[2.0, 4.0][r] for r in rows],
            events=[("M1", "power_outage", T0 + 100)] if k == 0 else (),
        )
    assert rec.days == []
    # the day stays open for its grace (2 h): frames held back by ingest still land in it
    feed.push(T0 + DAY_S + STEP, energy_kwh=0.5, events=[("M2", "cover_open", T0 + DAY_S + 60)])
    feed.push(T0 + DAY_S, meter_ids=["M2"], energy_kwh=0.7, revision=1)  # M2's 24:00 reading, late
    feed.push(T0 + DAY_S + 8 * STEP, energy_kwh=0.5)
    assert rec.days == []
    feed.push(T0 + DAY_S + 9 * STEP, energy_kwh=0.5)
    [day] = rec.days
    assert day.day_start == T0 and day.end == T0 + DAY_S and day.weekday == 0 and str(day.date) == "2026-01-05"
    assert day.complete  # the stream covered the whole day (its first frame closed 00:00–00:15)
    assert day.energy.shape == (2, 96)
    np.testing.assert_allclose(day.energy[0], profile[0], rtol=1e-6)
    assert day.reported.tolist() == [96, 95] and day.energy_intervals.tolist() == [96, 95]
    assert day.energy[1, 95] == pytest.approx(0.7)
    assert day.daily_kwh[0] == pytest.approx(profile[0].sum(), rel=1e-6)
    assert day.daily_kwh[1] == pytest.approx(np.nansum(profile[1]) + 0.7, rel=1e-6)
    assert day.max_demand_kw[0] == pytest.approx(1.0 + 95 / 96) and day.max_demand_kw[1] == 2.0
    assert day.mean_pf.tolist() == pytest.approx([0.9, 0.8])
    assert day.phase_current_a[:, 0].tolist() == [2.0, 4.0] and np.isnan(day.phase_current_a[:, 1:]).all()
    assert [e.code for e in day.events] == ["power_outage"]
    assert feed.state.day_start == T0 + DAY_S and [e.code for _, e in feed.state.events] == ["cover_open"]
    # the new day's buffer starts with the grace frames carried over
    profile_now = feed.state.groups[PIPELINE_GROUP]["profile"]
    assert np.flatnonzero(~np.isnan(profile_now[0])).tolist() == [0, 7, 8]
    assert feed.state.groups[PIPELINE_GROUP]["i_n"][:, 0, 0].tolist() == [0, 0]  # no currents in the new frames
    feed.flush()
    assert rec.days[1].reported.tolist() == [3, 3] and [e.code for e in rec.days[1].events] == ["cover_open"]
    assert not rec.days[1].complete  # flushed two hours into the day


def test_pipeline_closes_empty_days_up_to_the_cap() -> None:
    feed, rec = recording_feed(make_archive(1))
    feed.push(T0 + STEP, energy_kwh=1.0)
    feed.push(T0 + 3 * DAY_S + STEP, energy_kwh=1.0)  # lands in the grace of day 2
    assert [d.day_start for d in rec.days] == [T0, T0 + DAY_S]
    assert rec.days[1].reported.tolist() == [0] and np.isnan(rec.days[1].daily_kwh[0])
    feed.push(T0 + 40 * DAY_S + STEP, energy_kwh=1.0)
    assert len(rec.days) == 2 + 1 + TH.count("pipeline", "max_empty_days")
    assert rec.days[3].day_start == T0 + 3 * DAY_S and rec.days[3].reported.tolist() == [1]
    assert feed.state.day_start == T0 + 39 * DAY_S


def test_pipeline_derives_energy_from_registers_times_multiplier() -> None:
    feed, rec = recording_feed(make_archive([meter("M1", multiplier=40), meter("M2")]))
    feed.push(T0 + STEP, register_fwd_kwh=[100.0, 50.0])
    feed.push(T0 + 2 * STEP, register_fwd_kwh=[100.5, 50.2], energy_kwh=[None, 0.3])
    v = rec.views[-1]
    assert v.energy_kwh.tolist() == pytest.approx([20.0, 0.3])  # M1 derived 0.5 × 40; M2 reported wins
    assert v.derived.tolist() == [True, False]
    assert v.register_delta_kwh.tolist() == pytest.approx([20.0, 0.2])
    # a gap: the register lump is not booked into one interval
    feed.push(T0 + 5 * STEP, register_fwd_kwh=[101.0, 51.0])
    v = rec.views[-1]
    assert np.isnan(v.energy_kwh).all() and v.register_delta_kwh.tolist() == pytest.approx([20.0, 0.8])
    assert (v.prev_register_ts == T0 + 2 * STEP).all()
    # a replaced meter restarts: no previous register, no derived energy
    feed.push(T0 + 6 * STEP, register_fwd_kwh=[0.1, 51.1], events=[("M1", "meter_replaced", T0 + 6 * STEP - 60)])
    v = rec.views[-1]
    assert np.isnan(v.prev_register_fwd_kwh[0]) and np.isnan(v.energy_kwh[0]) and v.replaced.tolist() == [True, False]
    feed.push(T0 + 7 * STEP, register_fwd_kwh=[0.2, 51.2])
    assert rec.views[-1].energy_kwh[0] == pytest.approx(4.0)
    profile = feed.state.groups[PIPELINE_GROUP]["profile"]
    assert profile[0, 1] == pytest.approx(20.0) and np.isnan(profile[0, 4]) and profile[0, 6] == pytest.approx(4.0)


def test_pipeline_area_meter_energy_from_its_register() -> None:
    feed, rec = recording_feed(make_archive(1, area_meter={"meter_id": "T1", "multiplier": 40}))
    feed.push(T0 + STEP, energy_kwh=0.1, area_meter={"meter_id": "T1", "energy_kwh": None, "register_fwd_kwh": 1000.0})
    feed.push(
        T0 + 2 * STEP, energy_kwh=0.1, area_meter={"meter_id": "T1", "energy_kwh": None, "register_fwd_kwh": 1000.5}
    )
    assert np.isnan(rec.views[0].area_energy_kwh) and rec.views[1].area_energy_kwh == pytest.approx(20.0)
    assert feed.state.groups[PIPELINE_GROUP]["area_profile"][1] == pytest.approx(20.0)


def test_archive_reinstall_restarts_the_register_baseline() -> None:
    feed, rec = recording_feed(make_archive(1))
    feed.push(T0 + STEP, register_fwd_kwh=5000.0)
    feed.archive = make_archive([meter("M1", installed_at="2026-01-05T00:20:00Z")])
    feed.push(T0 + 2 * STEP, register_fwd_kwh=0.3)
    assert np.isnan(rec.views[-1].prev_register_fwd_kwh[0])


def test_pipeline_corrections_fill_the_day_and_duplicates_merge() -> None:
    feed, rec = recording_feed(make_archive(2))
    feed.push(T0 + STEP, energy_kwh=[0.1, 0.2])
    feed.push(T0 + 2 * STEP, meter_ids=["M1"], energy_kwh=0.1, missing=["M2"])
    feed.push(T0 + 3 * STEP, energy_kwh=[0.1, 0.2])
    # M2's 00:30 reading arrives late, in a correction frame
    feed.push(T0 + 2 * STEP, meter_ids=["M2"], energy_kwh=0.25, revision=1)
    v = rec.views[-1]
    assert v.late and v.conflicts == ()
    profile = feed.state.groups[PIPELINE_GROUP]["profile"]
    assert profile[1, 1] == pytest.approx(0.25)
    # the same correction delivered again is skipped entirely (at-least-once delivery)
    n_views = len(rec.views)
    assert feed.push(T0 + 2 * STEP, meter_ids=["M2"], energy_kwh=0.25, revision=1) == []
    assert len(rec.views) == n_views
    # a re-send of the same reading, identical: merged silently; different: a conflict, first value kept
    feed.push(T0 + 2 * STEP, meter_ids=["M2"], energy_kwh=0.25, revision=2)
    assert rec.views[-1].conflicts == ()
    feed.push(T0 + 2 * STEP, meter_ids=["M2"], energy_kwh=0.3, revision=3)
    [c] = rec.views[-1].conflicts
    assert (c.meter_id, c.kept, c.other) == ("M2", pytest.approx(0.25), 0.3)
    assert profile[1, 1] == pytest.approx(0.25)
    feed.push(T0 + DAY_S + 9 * STEP, energy_kwh=[0.1, 0.2])
    assert rec.days[0].reported.tolist() == [3, 3]
    # a late reading of a closed day no longer changes it (and does not disturb the new day)
    feed.push(T0 + 5 * STEP, meter_ids=["M1"], energy_kwh=9.0, revision=1)
    assert np.count_nonzero(~np.isnan(feed.state.groups[PIPELINE_GROUP]["profile"])) == 2


def test_late_register_does_not_move_the_baseline() -> None:
    feed, rec = recording_feed(make_archive(1))
    feed.push(T0 + STEP, register_fwd_kwh=10.0)
    feed.push(T0 + 3 * STEP, register_fwd_kwh=10.6)
    feed.push(T0 + 2 * STEP, register_fwd_kwh=10.3, revision=1)  # older than the last register
    assert np.isnan(rec.views[-1].prev_register_fwd_kwh[0])
    feed.push(T0 + 4 * STEP, register_fwd_kwh=10.9)
    assert rec.views[-1].energy_kwh[0] == pytest.approx(0.3)


def _scenario(feed: AreaFeed) -> None:
    reg = np.array([100.0, 200.0, 300.0])
    for k in range(1, 2 * 96 + 5):
        reg = reg + [0.2, 0.0, 0.3]
        reverse = [0.0, 0.0, 0.01 * k]
        offset = [5.0, 5.0, 600.0 if k % 7 == 0 else 1.0]
        events = [("M1", "cover_open", T0 + k * STEP - 10)] if k == 50 else ()
        feed.push(
            T0 + k * STEP,
            register_fwd_kwh=reg,
            register_rev_kwh=reverse,
            clock_offset_s=offset,
            current_a_a=[2.0, 3.0, 1.0],
            voltage_a_v=230.0,
            events=events,
        )
    feed.flush()


def test_pipeline_is_deterministic_across_runs_and_restarts() -> None:
    a, b = AreaFeed(), AreaFeed()
    _scenario(a)
    _scenario(b)
    assert a.alerts and a.alerts == b.alerts
    assert {r["type"] for r in a.alerts} >= {"clock_skew", "tamper_event", "reverse_energy", "meter_stopped"}
    # a restart from serialised state after every frame gives the same records
    c = AreaFeed()
    orig_push = c.push

    def push_with_restart(*args: Any, **kw: Any) -> list[dict[str, Any]]:
        out = orig_push(*args, **kw)
        c.state = AreaState.from_bytes(c.state.to_bytes())
        return out

    c.push = push_with_restart  # type: ignore[method-assign]
    _scenario(c)
    assert c.alerts == a.alerts


def test_registry_names_are_unique_and_have_thresholds() -> None:
    names = [d.name for d in DETECTORS]
    assert len(names) == len(set(names)) and PIPELINE_GROUP not in names
    for name in names:
        TH.section(name)
