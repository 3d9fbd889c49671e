"""Normalisation: units to kWh, stamps to interval ends, clock offset, phases to columns."""

from __future__ import annotations

import pytest

from services.ingest.normalise import COLUMNS, Misaligned, align, format_time, normalise, parse_time

T = int(parse_time("2026-01-05T00:15:00Z"))


def _normalise(item: dict, unit: str = "kWh", stamp: float = T, interval: int = 15):
    return normalise(
        {"meter_id": "M1", **item},
        area_id="A1",
        ts=align(stamp, interval),
        stamp=stamp,
        interval_minutes=interval,
        unit=unit,
        is_area_meter=False,
        index=None,
    )


def values(reading) -> dict:
    return dict(zip(COLUMNS, reading.values, strict=True))


def test_wh_is_divided_by_1000_for_energy_and_both_registers() -> None:
    got = values(_normalise({"energy": 420, "register_fwd": 10234510, "register_rev": 1500.5}, unit="Wh"))
    assert (got["energy_kwh"], got["register_fwd_kwh"], got["register_rev_kwh"]) == (0.42, 10234.51, 1.5005)


def test_kwh_passes_unchanged_and_other_fields_keep_their_units() -> None:
    got = values(_normalise({"energy": 0.42, "demand_kw": 1.7, "power_factor": 0.97, "voltage": {"a": 230}}, unit="Wh"))
    assert got["energy_kwh"] == 0.00042
    assert (got["demand_kw"], got["power_factor"], got["voltage_a_v"]) == (1.7, 0.97, 230.0)
    got = values(_normalise({"energy": 3}))
    assert got["energy_kwh"] == 3.0 and isinstance(got["energy_kwh"], float)


def test_phase_dicts_become_columns_with_nulls_for_missing_phases() -> None:
    got = values(_normalise({"energy": 1, "voltage": {"a": 231.2, "c": 0.0}, "current": {"b": 11.8}}))
    assert [got[f"voltage_{p}_v"] for p in "abc"] == [231.2, None, 0.0]
    assert [got[f"current_{p}_a"] for p in "abc"] == [None, 11.8, None]


def test_absent_fields_are_null() -> None:
    got = values(_normalise({"register_fwd": 5.0}))
    assert got["register_fwd_kwh"] == 5.0
    assert all(v is None for k, v in got.items() if k != "register_fwd_kwh")


@pytest.mark.parametrize(
    ("stamp", "interval", "expected"),
    [
        ("2026-01-05T00:15:00Z", 15, "2026-01-05T00:15:00Z"),
        ("2026-01-05T00:15:03Z", 15, "2026-01-05T00:15:00Z"),
        ("2026-01-05T00:13:30Z", 15, "2026-01-05T00:15:00Z"),  # exactly 10 %
        ("2026-01-05T00:16:30Z", 15, "2026-01-05T00:15:00Z"),
        ("2026-01-05T10:55:00Z", 60, "2026-01-05T11:00:00Z"),
        ("2026-01-05T23:00:00Z", 1440, "2026-01-06T00:00:00Z"),
    ],
)
def test_align_within_ten_percent(stamp: str, interval: int, expected: str) -> None:
    assert format_time(align(parse_time(stamp), interval)) == expected


@pytest.mark.parametrize(
    ("stamp", "interval"),
    [
        ("2026-01-05T00:13:29Z", 15),
        ("2026-01-05T00:07:30Z", 15),
        ("2026-01-05T00:15:00Z", 60),
        ("2026-01-05T21:00:00Z", 1440),
    ],
)
def test_misaligned_beyond_ten_percent(stamp: str, interval: int) -> None:
    with pytest.raises(Misaligned):
        align(parse_time(stamp), interval)


def test_clock_offset_is_meter_time_minus_the_raw_stamp() -> None:
    stamp = parse_time("2026-01-05T00:15:03Z")
    got = values(_normalise({"energy": 1, "meter_time": "2026-01-05T00:15:05.250Z"}, stamp=stamp))
    assert got["clock_offset_s"] == 2.25
    got = values(_normalise({"energy": 1, "meter_time": "2026-01-05T00:09:59.9Z"}))
    assert got["clock_offset_s"] == -300.1


def test_reading_keeps_events_and_position() -> None:
    reading = normalise(
        {"meter_id": "M1", "energy": 0, "events": [{"code": "cover_open", "at": "2026-01-05T00:09:41Z"}]},
        area_id="A1",
        ts=T,
        stamp=T,
        interval_minutes=15,
        unit="kWh",
        is_area_meter=False,
        index=4,
    )
    assert reading.events == (("cover_open", "2026-01-05T00:09:41Z"),)
    assert (reading.slot, reading.frame_key) == (4, ("A1", T, 15))
    assert format_time(reading.ts) == "2026-01-05T00:15:00Z"
