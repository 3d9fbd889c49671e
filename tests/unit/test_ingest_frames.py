"""FrameAssembler: closing (complete, grace, stale, idle), duplicates, conflicts, corrections, the contract."""

from __future__ import annotations

from typing import Any

import pytest

import schemas
from services.ingest.archive_view import ArchiveView, AreaArchive
from services.ingest.frames import FrameAssembler, _digests, reading_digest
from services.ingest.normalise import COLUMNS, Reading, format_time, parse_time

T0 = int(parse_time("2026-01-05T00:00:00Z"))
STEP = 900


def ts(k: int) -> int:
    return T0 + k * STEP


def reading(
    meter: str, k: int, energy: float | None = 0.5, area: str = "A1", interval: int = 15, **fields: Any
) -> Reading:
    values = dict.fromkeys(COLUMNS)
    values.update(energy_kwh=energy, **fields)
    return Reading(
        area,
        meter,
        T0 + k * interval * 60,
        interval,
        meter.startswith("T"),
        tuple(values[c] for c in COLUMNS),
        (),
        None,
    )


def view(meters: int = 3, area: str = "A1", inactive: tuple[str, ...] = ()) -> ArchiveView:
    archive = ArchiveView()
    statuses = {f"M{i}": "active" for i in range(1, meters + 1)}
    statuses.update(dict.fromkeys(inactive, "inactive"))
    archive.put(AreaArchive(area, f"T{area[1:]}", statuses))
    return archive


def full(k: int, area: str = "A1", meters: int = 3) -> list[Reading]:
    return [reading(f"T{area[1:]}", k, 50.0, area=area)] + [
        reading(f"M{i}", k, 0.1 * i, area=area) for i in range(1, meters + 1)
    ]


def ids(frames: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(f["frame_id"], f["closed_by"]) for f in frames]


def frame_id(k: int, revision: int = 0, area: str = "A1") -> str:
    return f"{area}|{format_time(ts(k))}|{revision}"


def check_contract(frame: dict[str, Any]) -> None:
    schemas.validator("area_frame").validate(frame)
    meters = frame["meters"]
    assert len({len(column) for column in meters.values()}) == 1
    assert meters["meter_id"] == sorted(meters["meter_id"])


def test_complete_when_every_active_meter_and_the_area_meter_reported() -> None:
    assembler = FrameAssembler(view(inactive=("M9",)))
    readings = full(1)  # T1, M1, M2, M3: the inactive M9 is not waited for
    assert assembler.add(readings[:-1], 0) == []
    (frame,) = assembler.add(readings[-1:], 1)
    assert (frame["frame_id"], frame["closed_by"], frame["missing"]) == (frame_id(1), "complete", [])
    assert frame["meters"]["meter_id"] == ["M1", "M2", "M3"]
    assert frame["area_meter"] == {
        "meter_id": "T1",
        "energy_kwh": 50.0,
        "register_fwd_kwh": None,
        "register_rev_kwh": None,
    }
    assert frame["stats"] == {"readings": 4, "duplicates_dropped": 0}
    check_contract(frame)


def test_complete_needs_the_area_meter_and_is_checked_per_message() -> None:
    assembler = FrameAssembler(view())
    customers = full(1)[1:]
    assert assembler.add(customers, 0) == []
    assert ids(assembler.add([reading("T1", 1, 50.0)], 1)) == [(frame_id(1), "complete")]
    assert assembler.open_count == 0


def test_grace_closes_when_the_area_watermark_passes_two_intervals() -> None:
    assembler = FrameAssembler(view())
    assert assembler.add(full(1)[:2], 0) == []  # T1, M1
    assert assembler.add([reading("M1", 2)], 1) == []
    assert assembler.add([reading("M1", 3)], 2) == []  # watermark = ts + 2 intervals: not past yet
    (frame,) = assembler.add([reading("M1", 4)], 3)
    assert (frame["frame_id"], frame["closed_by"], frame["missing"]) == (frame_id(1), "grace", ["M2", "M3"])
    check_contract(frame)


@pytest.mark.parametrize("grace", [0, 1, 4])
def test_grace_is_configurable(grace: int) -> None:
    assembler = FrameAssembler(view(), grace_intervals=grace)
    assembler.add([reading("M1", 1)], 0)
    closed_at = next(k for k in range(2, 10) if assembler.add([reading("M1", k)], k))
    assert closed_at == 1 + grace + 1


def test_watermarks_are_per_area() -> None:
    archive = view()
    archive.put(AreaArchive("A2", "T2", {"M1": "active"}))
    assembler = FrameAssembler(archive)
    assembler.add([reading("M1", 1, area="A1")], 0)
    assert assembler.add([reading("M1", k, area="A2") for k in range(1, 8)], 1) != []
    assert assembler.open_count == 4  # A1 k=1 and A2 k=5..7 (A2 k=1..4 closed by A2's grace)
    assert ids(assembler.add([reading("M1", 4, area="A1")], 2)) == [(frame_id(1), "grace")]


def test_a_silent_area_is_closed_by_the_partitions_event_time() -> None:
    archive = view()
    archive.put(AreaArchive("A2", "T2", {"M1": "active"}))
    assembler = FrameAssembler(archive, stale_s=4 * STEP)
    assembler.add([reading("M1", 1, area="A1")], 0)
    assert [f for f in assembler.add([reading("M1", 5, area="A2")], 1) if f["area_id"] == "A1"] == []
    frames = assembler.add([reading("M1", 6, area="A2")], 2)
    assert (frame_id(1), "grace") in ids(frames)


def test_idle_flush_closes_everything_in_order() -> None:
    assembler = FrameAssembler(view())
    assembler.add([reading("M1", 2), reading("M1", 1)], 0)
    frames = assembler.flush()
    assert ids(frames) == [(frame_id(1), "idle"), (frame_id(2), "idle")]
    assert assembler.open_count == 0 and assembler.first_open_offset() is None
    for frame in frames:
        check_contract(frame)


def test_exact_duplicates_are_dropped_and_counted() -> None:
    assembler = FrameAssembler(view())
    assembler.add([reading("M1", 1, 0.3), reading("T1", 1, 9.0)], 0)
    assembler.add([reading("M1", 1, 0.3), reading("T1", 1, 9.0)], 1)
    (frame,) = assembler.flush()
    assert frame["stats"] == {"readings": 2, "duplicates_dropped": 2}
    assert frame["conflicts"] == []


def test_conflicting_duplicates_keep_the_first_value_and_list_each_differing_field() -> None:
    assembler = FrameAssembler(view())
    assembler.add([reading("M1", 1, 0.31, voltage_a_v=230.0), reading("T1", 1, 9.0)], 0)
    assembler.add([reading("M1", 1, 0.35, voltage_a_v=231.0), reading("T1", 1, 9.5)], 1)
    (frame,) = assembler.flush()
    assert frame["meters"]["energy_kwh"] == [0.31]
    assert frame["conflicts"] == [
        {"meter_id": "M1", "field": "energy_kwh", "kept": 0.31, "other": 0.35},
        {"meter_id": "M1", "field": "voltage_a_v", "kept": 230.0, "other": 231.0},
        {"meter_id": "T1", "field": "energy_kwh", "kept": 9.0, "other": 9.5},
    ]
    assert frame["stats"] == {"readings": 2, "duplicates_dropped": 0}
    check_contract(frame)


def test_events_are_merged_across_deliveries() -> None:
    assembler = FrameAssembler(view())
    first = Reading(
        "A1", "M1", ts(1), 15, False, (0.1,) + (None,) * 11, (("cover_open", "2026-01-05T00:09:41Z"),), None
    )
    again = Reading(
        "A1",
        "M1",
        ts(1),
        15,
        False,
        (0.1,) + (None,) * 11,
        (("cover_open", "2026-01-05T00:09:41Z"), ("magnetic_field", "2026-01-05T00:01:00Z")),
        None,
    )
    assembler.add([first], 0)
    assembler.add([again], 1)
    (frame,) = assembler.flush()
    assert frame["events"] == [
        {"meter_id": "M1", "code": "magnetic_field", "at": "2026-01-05T00:01:00Z"},
        {"meter_id": "M1", "code": "cover_open", "at": "2026-01-05T00:09:41Z"},
    ]
    assert frame["stats"]["duplicates_dropped"] == 1


def test_late_readings_become_numbered_corrections_never_dropped() -> None:
    assembler = FrameAssembler(view())
    assert ids(assembler.add(full(1), 0)) == [(frame_id(1), "complete")]
    # An identical re-send of what the closed frame sent is a duplicate: dropped and counted, once.
    assert assembler.add(full(1), 1) == [] and assembler.late_duplicates == 4
    # Different values after completion travel as a correction, one per message and frame.
    (first,) = assembler.add([reading("M1", 1, 0.15), reading("M2", 1, 0.25)], 2)
    (second,) = assembler.add([reading("M3", 1, 0.35)], 3)
    assert ids([first, second]) == [(frame_id(1, 1), "late"), (frame_id(1, 2), "late")]
    assert first["meters"]["meter_id"] == ["M1", "M2"] and first["missing"] == []
    for frame in (first, second):
        check_contract(frame)
    # ... and once sent, a correction's values are remembered too.
    assert assembler.add([reading("M3", 1, 0.35)], 4) == [] and assembler.late_duplicates == 5


def test_a_reading_for_a_frame_past_its_grace_is_late_even_if_never_opened() -> None:
    assembler = FrameAssembler(view())
    assembler.add([reading("M1", 5)], 0)
    (frame,) = assembler.add([reading("M1", 1)], 1)
    assert ids([frame]) == [(frame_id(1, 1), "late")]
    assert ids(assembler.add([reading("M2", 1)], 2)) == [(frame_id(1, 2), "late")]
    # within grace it still opens a normal frame
    assert assembler.add([reading("M1", 3)], 3) == [] and assembler.open_count == 2


def test_one_message_can_feed_several_frames_and_a_correction() -> None:
    assembler = FrameAssembler(view())
    assembler.add(full(1), 0)
    frames = assembler.add([reading("M1", 2), reading("M2", 1, 0.9), reading("M1", 3)], 7)
    assert ids(frames) == [(frame_id(1, 1), "late")]
    assert sorted(assembler.open_offsets()) == [7] and assembler.first_open_offset() == 7


def test_daily_and_interval_frames_of_one_area_are_separate() -> None:
    assembler = FrameAssembler(view())
    assembler.add([reading("M1", 96), reading("M1", 1, 9.0, interval=1440)], 0)
    frames = assembler.flush()
    assert [(f["ts"], f["interval_minutes"]) for f in frames] == [
        ("2026-01-06T00:00:00Z", 15),
        ("2026-01-06T00:00:00Z", 1440),
    ]


def test_open_offsets_track_every_contributing_message() -> None:
    assembler = FrameAssembler(view())
    assembler.add([reading("M1", 1)], 10)
    assembler.add([reading("M1", 1)], 11)  # a duplicate still holds its offset: replay recounts it
    assembler.add([reading("M2", 2)], 12)
    assembler.add(full(3)[:1], 13)
    assert assembler.first_open_offset() == 10
    assert assembler.open_offsets() == {10, 11, 12, 13}


def test_marks_and_restore_round_trip() -> None:
    assembler = FrameAssembler(view())
    assembler.add(full(1), 0)
    assembler.add([reading("M1", 2)], 1)
    marks = assembler.marks()
    assert (marks["A1"].watermark, marks["A1"].open, marks["A1"].closed) == (ts(2), ((ts(2), 15),), ((ts(1), 15, 0),))
    restored = FrameAssembler(view())
    restored.restore(marks, assembler.newest)
    assert restored.marks() == {"A1": type(marks["A1"])(ts(2), [], [(ts(1), 15, 0)], marks["A1"].sent)}
    assert set(marks["A1"].sent[(ts(1), 15)]) == {"T1", "M1", "M2", "M3"}
    assert restored.add([reading("M1", 1, 0.1)], 2) == []  # the restored digests still catch a re-send
    assert ids(restored.add([reading("M1", 1)], 3)) == [(frame_id(1, 1), "late")]


def test_closed_memory_is_pruned() -> None:
    assembler = FrameAssembler(view(), horizon_s=10 * STEP)
    assembler.add(full(1), 0)
    assembler.add([reading("M1", 1)], 1)  # revision 1
    assembler.add([reading("M1", 4)], 2)
    assert assembler.marks()["A1"].closed == ((ts(1), 15, 1),)  # revision 0 entries go once due
    assembler.add([reading("M1", 12)], 3)
    assert assembler.marks()["A1"].closed == ()


def test_frames_of_an_area_leave_in_ts_order_a_gap_holds_complete_frames_behind_it() -> None:
    assembler = FrameAssembler(view())
    assert assembler.add(full(1)[:-1], 0) == []  # M3 missing at k=1
    assert assembler.add(full(2), 1) == []  # complete, but held behind k=1
    assert assembler.add(full(2)[1:2], 2) == []  # a re-send into the held frame is merged, not a correction
    assert assembler.add(full(3), 3) == []
    frames = assembler.add(full(4), 4)  # k=1 is past its grace: everything behind it goes, in order
    assert ids(frames) == [
        (frame_id(1), "grace"),
        (frame_id(2), "complete"),
        (frame_id(3), "complete"),
        (frame_id(4), "complete"),
    ]
    assert frames[0]["missing"] == ["M3"] and frames[1]["stats"]["duplicates_dropped"] == 1


def test_the_order_holds_per_interval_length_only() -> None:
    assembler = FrameAssembler(view())
    daily = [reading(m, 1, interval=1440) for m in ("T1", "M1")]  # incomplete daily frame, 2 days of grace
    assert assembler.add(daily, 0) == []
    assert ids(assembler.add(full(97), 1)) == [(frame_id(97), "complete")]


def test_flush_closes_complete_frames_as_complete() -> None:
    assembler = FrameAssembler(view())
    assembler.add(full(1)[:-1], 0)
    assembler.add(full(2), 1)
    assert ids(assembler.flush()) == [(frame_id(1), "idle"), (frame_id(2), "complete")]


def test_an_older_frame_completing_releases_the_held_ones_without_the_watermark_moving() -> None:
    assembler = FrameAssembler(view())
    assert assembler.add(full(1)[:-1], 0) == []  # M3 missing at k=1
    assert assembler.add(full(2), 1) == []  # complete, held behind k=1; the watermark is now ts(2)
    assert ids(assembler.add(full(1)[-1:], 2)) == [(frame_id(1), "complete"), (frame_id(2), "complete")]


def test_digests_tell_every_changed_value_and_agree_one_by_one_and_per_frame() -> None:
    base = reading("M1", 1, 0.5, voltage_a_v=220.1, power_factor=0.95).values
    variants = [base[:i] + (other,) + base[i + 1:] for i, value in enumerate(base)
                for other in ((0.0, -0.0, 1e-9) if value is None else (None, value + 1e-9, -value))]
    digests = [reading_digest(v) for v in [base, *variants]]
    assert len(set(digests)) == len(digests)  # every single change shows, None and 0.0 and -0.0 included
    assert all(0 <= d < 2**32 for d in digests)
    rows = {f"M{i}": v for i, v in enumerate(variants)}
    assert _digests(rows) == {m: reading_digest(v) for m, v in rows.items()}
    assert reading_digest(base[:3]) != reading_digest(base)  # the area meter's 3 columns digest on their own
    assert _digests({}) == {}
    steps = {f"M{k}": (round(k * 0.001, 3), *base[1:]) for k in range(5000)}  # meter readings a Wh apart
    assert len(set(_digests(steps).values())) == len(steps)
