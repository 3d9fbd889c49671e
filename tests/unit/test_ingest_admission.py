"""The state-dependent checks: future_timestamp (event time and wall clock), unknown_area, unknown_meter."""

from __future__ import annotations

from typing import Any

import orjson

from services.ingest.admission import admit
from services.ingest.archive_view import ArchiveView, AreaArchive
from services.ingest.normalise import format_time, parse_time
from services.ingest.validation import validate

T = int(parse_time("2026-01-05T12:00:00Z"))
WALL = T + 3600.0


def archive() -> ArchiveView:
    view = ArchiveView()
    view.put(AreaArchive("A1", "T1", {"M1": "active", "M2": "active", "M3": "inactive"}))
    return view


def reading(meter: str = "M1", area: str = "A1", ts: int = T, kind: str = "meter_reading") -> bytes:
    return orjson.dumps(
        {"kind": kind, "meter_id": meter, "area_id": area, "ts": format_time(ts), "interval_minutes": 15, "energy": 0.1}
    )


def upload(items: list[dict[str, Any]], area: str = "A1", ts: int = T) -> bytes:
    return orjson.dumps(
        {
            "kind": "concentrator_upload",
            "concentrator_id": "C1",
            "area_id": area,
            "ts": format_time(ts),
            "interval_minutes": 15,
            "area_meter": {"meter_id": "T1", "energy": 5.0},
            "readings": items,
        }
    )


def verdicts(raw: bytes, newest: int | None = T, now: float = WALL) -> tuple[list[str], list[tuple[str, int | None]]]:
    accepted, rejections = admit(validate(raw), archive(), newest, now)
    return [r.meter_id for r in accepted], [(r.reason, r.index) for r in rejections]


def test_known_meters_pass_inactive_included() -> None:
    assert verdicts(reading("M3")) == (["M3"], [])
    assert verdicts(reading("T1", kind="area_meter_reading")) == (["T1"], [])


def test_unknown_area_and_unknown_meter() -> None:
    assert verdicts(reading("M1", area="A9")) == ([], [("unknown_area", None)])
    assert verdicts(reading("M9")) == ([], [("unknown_meter", None)])
    # A customer meter claiming the area meter's id, and the reverse, are not this area's meters.
    assert verdicts(reading("T1")) == ([], [("unknown_meter", None)])
    assert verdicts(reading("M1", kind="area_meter_reading")) == ([], [("unknown_meter", None)])


def test_future_against_newest_event_time_not_wall_clock() -> None:
    assert verdicts(reading(ts=T + 3600)) == (["M1"], [])
    assert verdicts(reading(ts=T + 3600 + 900)) == ([], [("future_timestamp", None)])
    # Replaying old data with a wall clock far ahead changes nothing.
    assert verdicts(reading(ts=T + 900), now=WALL + 10 * 86400) == (["M1"], [])


def test_future_against_wall_clock_when_no_data_seen() -> None:
    assert verdicts(reading(ts=T), newest=None, now=T - 86400 + 1) == (["M1"], [])
    assert verdicts(reading(ts=T), newest=None, now=T - 86400 - 900) == ([], [("future_timestamp", None)])


def test_future_beats_unknown_meter() -> None:
    assert verdicts(reading("M9", ts=T + 7200)) == ([], [("future_timestamp", None)])


def test_upload_envelope_is_judged_once() -> None:
    items = [{"meter_id": "M1", "energy": 1}, {"meter_id": "M9", "energy": 1}]
    assert verdicts(upload(items, area="A9")) == ([], [("unknown_area", None)])
    assert verdicts(upload(items, ts=T + 86400)) == ([], [("future_timestamp", None)])


def test_upload_items_are_judged_one_by_one() -> None:
    items = [
        {"meter_id": "M1", "energy": 1},
        {"meter_id": "M9", "energy": 1},
        {"meter_id": "M2", "energy": 1, "ts": format_time(T + 86400)},
        {"meter_id": "M2", "energy": 1, "area_id": "A7"},
        {"meter_id": "M2", "energy": -1},
    ]
    accepted, rejected = verdicts(upload(items))
    assert accepted == ["T1", "M1"]
    assert rejected == [("negative_energy", 4), ("unknown_meter", 1), ("future_timestamp", 2), ("unknown_area", 3)]
