"""Event-like detectors: for each, a case that fires (with its evidence) and cases that must not.

Every case runs through the real pipeline (``AreaFeed``) with the default
thresholds, so data faults handled upstream of a detector (registers reset by a
replacement, gaps, identical duplicates) are tested where they are handled.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from services.detector.eventtime import DAY_S, format_ts
from tests.unit.detector_frames import STEP, T0, AreaFeed, make_archive, meter


def only(feed: AreaFeed, type_: str) -> dict[str, Any]:
    """The single alert opened for ``type_``."""
    [alert] = feed.opened(type_)
    return alert


def none_of(feed: AreaFeed, type_: str) -> bool:
    return not [a for a in feed.alerts if a["type"] == type_]


def registers(feed: AreaFeed, k0: int, k1: int, start: float, step: float, **cols: Any) -> float:
    """Push intervals k0..k1-1 with a forward register rising by ``step``; return the last register."""
    reg = start
    for k in range(k0, k1):
        reg += step
        feed.push(T0 + k * STEP, register_fwd_kwh=reg, **cols)
    return reg


# -- register_decrease ---------------------------------------------------------------------


def test_register_decrease_fires_with_both_registers() -> None:
    feed = AreaFeed(make_archive([meter("M1", multiplier=30)]))
    registers(feed, 1, 4, 1000.0, 0.1)
    feed.push(T0 + 4 * STEP, register_fwd_kwh=990.3)
    a = only(feed, "register_decrease")
    assert a["subject_id"] == "M1" and a["severity"] == "high" and a["first_seen"] == format_ts(T0 + 4 * STEP)
    ev = a["evidence"]
    assert ev["previous_register_kwh"] == pytest.approx(1000.3) and ev["register_kwh"] == 990.3
    assert ev["decrease_kwh"] == pytest.approx(10.0) and ev["decrease_primary_kwh"] == pytest.approx(300.0)
    assert ev["previous_at"] == format_ts(T0 + 3 * STEP)


def test_register_reset_by_meter_replacement_is_not_a_decrease() -> None:
    feed = AreaFeed(make_archive(1))
    registers(feed, 1, 4, 5000.0, 0.2)
    feed.push(T0 + 4 * STEP, register_fwd_kwh=0.1, events=[("M1", "meter_replaced", T0 + 4 * STEP - 120)])
    registers(feed, 5, 8, 0.1, 0.2)
    # the archive's re-install (new installed_at) restarts the baseline too, event or not
    feed.archive = make_archive([meter("M1", installed_at=format_ts(T0 + 8 * STEP - 60))])
    feed.push(T0 + 8 * STEP, register_fwd_kwh=0.05)
    assert none_of(feed, "register_decrease")


def test_out_of_order_register_is_not_a_decrease() -> None:
    feed = AreaFeed(make_archive(1))
    feed.push(T0 + STEP, register_fwd_kwh=10.0)
    feed.push(T0 + 3 * STEP, register_fwd_kwh=10.6)
    feed.push(T0 + 2 * STEP, register_fwd_kwh=10.3, revision=1)
    feed.push(T0 + 4 * STEP, register_fwd_kwh=10.6)  # unchanged is not lower
    assert none_of(feed, "register_decrease")


# -- meter_stopped ---------------------------------------------------------------------------


def test_meter_stopped_fires_after_a_day_with_current_flowing() -> None:
    feed = AreaFeed(make_archive(1))
    registers(feed, 1, 5, 100.0, 0.2, current_a_a=2.0)
    for k in range(5, 5 + 96 + 1):
        feed.push(T0 + k * STEP, register_fwd_kwh=100.8, current_a_a=2.0)
    a = only(feed, "meter_stopped")
    ev = a["evidence"]
    assert a["first_seen"] == format_ts(T0 + (4 + 96) * STEP)  # 24 h after the last move (00:60)
    assert ev["unchanged_hours"] == 24.0 and ev["unchanged_since"] == format_ts(T0 + 4 * STEP)
    assert ev["register_kwh"] == 100.8 and ev["readings_in_stall"] == 96 and ev["readings_with_current_flow"] == 96


def test_meter_stopped_fires_on_history_without_current_data() -> None:
    feed = AreaFeed(make_archive(1))
    reg = registers(feed, 1, 2 * 96 + 1, 100.0, 0.05)  # two full days of 4.8 kWh
    for k in range(2 * 96 + 1, 3 * 96 + 2):
        feed.push(T0 + k * STEP, register_fwd_kwh=reg)
    ev = only(feed, "meter_stopped")["evidence"]
    assert ev["history_kwh_day"] == pytest.approx(4.8, rel=1e-3) and ev["readings_with_current_data"] == 0


def test_a_collection_gap_is_not_a_stopped_meter() -> None:
    feed = AreaFeed(make_archive(1))
    reg = registers(feed, 1, 5, 100.0, 0.2, current_a_a=2.0)
    # nothing for 30 hours, then the same register: no reading saw a stall
    for k in range(5 + 120, 5 + 124):
        feed.push(T0 + k * STEP, register_fwd_kwh=reg, current_a_a=2.0)
    assert none_of(feed, "meter_stopped")


def test_an_idle_meter_without_current_is_not_stopped() -> None:
    feed = AreaFeed(make_archive(1))
    reg = registers(feed, 1, 2 * 96 + 1, 100.0, 0.05, current_a_a=1.0)
    for k in range(2 * 96 + 1, 4 * 96):
        feed.push(T0 + k * STEP, register_fwd_kwh=reg, current_a_a=0.0)
    assert none_of(feed, "meter_stopped")


# -- meter_flying ----------------------------------------------------------------------------


def test_meter_flying_fires_above_the_rated_limit() -> None:
    feed = AreaFeed(make_archive(1))  # 60 A × 220 V × 1 phase × 0.25 h = 3.3 kWh
    feed.push(T0 + STEP, energy_kwh=0.5)
    feed.push(T0 + 2 * STEP, energy_kwh=5.0)
    ev = only(feed, "meter_flying")["evidence"]
    assert ev["rule"] == "rated" and ev["energy_kwh"] == 5.0 and ev["rated_limit_kwh"] == pytest.approx(3.3)


def test_meter_flying_fires_at_ten_times_the_baseline_peak() -> None:
    feed = AreaFeed(make_archive(1))
    day = np.full(96, 0.1)
    day[40] = 0.2  # daily peak 0.2 kWh
    for d in range(8):
        for k in range(96):
            feed.push(T0 + d * DAY_S + (k + 1) * STEP, energy_kwh=day[k])
    assert none_of(feed, "meter_flying")
    feed.push(T0 + 8 * DAY_S + STEP, energy_kwh=1.9)  # below 10 × 0.2
    assert none_of(feed, "meter_flying")
    feed.push(T0 + 8 * DAY_S + 2 * STEP, energy_kwh=2.5)
    ev = only(feed, "meter_flying")["evidence"]
    assert ev["rule"] == "baseline_peak" and ev["baseline_peak_kwh"] == pytest.approx(0.2) and ev["energy_kwh"] == 2.5


def test_first_use_after_idle_weeks_is_not_flying() -> None:
    """An idle meter's peak of 0 is no baseline: its first real use is not "10 × 0" (usage_on_inactive's case)."""
    for status in ("active", "inactive"):
        feed = AreaFeed(make_archive([meter("M1", status=status)]))
        for d in range(9):
            for k in range(96):
                feed.push(T0 + d * DAY_S + (k + 1) * STEP, energy_kwh=0.0)
        feed.push(T0 + 9 * DAY_S + STEP, energy_kwh=0.6)
        feed.push(T0 + 9 * DAY_S + 2 * STEP, energy_kwh=0.8)
        assert none_of(feed, "meter_flying"), status


def test_a_gap_lump_does_not_make_a_meter_fly() -> None:
    feed = AreaFeed(make_archive(1))
    feed.push(T0 + STEP, register_fwd_kwh=100.0)
    feed.push(T0 + 40 * STEP, register_fwd_kwh=110.0)  # 10 kWh over 39 intervals, one reading
    assert none_of(feed, "meter_flying")


# -- clock_skew ------------------------------------------------------------------------------


def test_clock_skew_fires_beyond_300_s_and_on_clock_error_events() -> None:
    feed = AreaFeed(make_archive(3))
    feed.push(T0 + STEP, clock_offset_s=[299.0, -300.0, -412.0])
    feed.push(T0 + 2 * STEP, clock_offset_s=5.0, events=[("M1", "clock_error", T0 + 2 * STEP - 30)])
    skews = {a["subject_id"]: a for a in feed.opened("clock_skew")}
    assert set(skews) == {"M3", "M1"}
    assert skews["M3"]["evidence"] == {"clock_offset_s": -412.0, "max_offset_s": 300.0}
    assert skews["M3"]["score"] == pytest.approx(1 - 0.5 * 300 / 412, abs=1e-4)
    assert skews["M1"]["evidence"]["event"] == "clock_error"


# -- voltage_loss ----------------------------------------------------------------------------


def test_voltage_loss_trips_under_load_and_recovers_at_85_pct() -> None:
    feed = AreaFeed(
        make_archive([meter("M1", phases=3, customer_class="commercial", nominal_voltage_v=220, basic_current_a=10)])
    )
    v_ok = {"voltage_a_v": 221.0, "voltage_c_v": 219.0}
    cur = {"current_a_a": 3.0, "current_b_a": 3.0, "current_c_a": 3.0}
    feed.push(T0 + STEP, voltage_b_v=200.0, **v_ok, **cur)  # 90.9 %: fine
    feed.push(T0 + 2 * STEP, voltage_b_v=150.0, **v_ok, **cur)  # 68 %: trips
    a = only(feed, "voltage_loss")
    ev = a["evidence"]
    assert (
        ev["phases"] == ["b"]
        and ev["voltage_v"] == [150.0]
        and ev["voltage_pct_nominal"] == [pytest.approx(68.2, abs=0.1)]
    )
    assert ev["current_a"] == [3.0] and ev["trip_pct_nominal"] == 78.0
    lost = feed.state.groups["voltage_loss"]["lost"]
    feed.push(T0 + 3 * STEP, voltage_b_v=180.0, **v_ok, **cur)  # 81.8 %: above trip, below recovery → still lost
    assert lost[0] == 2
    feed.push(T0 + 4 * STEP, voltage_b_v=190.0, **v_ok, **cur)  # 86.4 %: recovered
    assert lost[0] == 0
    feed.push(T0 + 5 * STEP, voltage_b_v=180.0, **v_ok, **cur)  # 81.8 % from healthy: not a trip
    assert lost[0] == 0 and len(feed.opened("voltage_loss")) == 1


def test_an_outage_is_not_voltage_loss() -> None:
    feed = AreaFeed(make_archive(2))
    feed.push(T0 + STEP, voltage_a_v=[0.0, 0.0], current_a_a=[0.0, 0.0])  # no current: outage
    feed.push(
        T0 + 2 * STEP, voltage_a_v=[230.0, 230.0], current_a_a=[2.0, 2.0], voltage_b_v=[100.0, None]
    )  # no phase b
    assert none_of(feed, "voltage_loss")


# -- current_loss ----------------------------------------------------------------------------


def _three_phase(**fields: Any) -> dict[str, Any]:
    return meter(
        "M1", phases=3, customer_class="industrial", basic_current_a=10, max_current_a=100, contracted_kva=200, **fields
    )


def test_current_loss_fires_on_one_dead_phase_under_load() -> None:
    feed = AreaFeed(make_archive([_three_phase()]))
    feed.push(
        T0 + STEP,
        voltage_a_v=230.0,
        voltage_b_v=229.0,
        voltage_c_v=231.0,
        current_a_a=6.0,
        current_b_a=0.01,
        current_c_a=5.5,
    )
    ev = only(feed, "current_loss")["evidence"]
    assert ev["phases"] == ["b"] and ev["current_a"] == [6.0, 0.01, 5.5] and ev["basic_current_a"] == 10.0


def test_current_loss_needs_voltage_load_and_three_phases() -> None:
    feed = AreaFeed(make_archive([_three_phase(), meter("M2")]))
    base = {"voltage_a_v": 230.0, "voltage_c_v": 231.0, "current_a_a": 6.0, "current_c_a": 5.5}
    feed.push(T0 + STEP, voltage_b_v=[0.0, None], current_b_a=[0.0, None], **base)  # phase b dead: voltage, not current
    feed.push(
        T0 + 2 * STEP,
        voltage_b_v=229.0,
        current_b_a=0.0,
        voltage_a_v=230.0,
        voltage_c_v=231.0,
        current_a_a=0.3,
        current_c_a=0.4,
    )  # light load
    assert none_of(feed, "current_loss")


# -- reverse_energy --------------------------------------------------------------------------


def test_reverse_energy_fires_without_generation_only() -> None:
    feed = AreaFeed(make_archive([meter("M1"), meter("M2", has_generation=True)]))
    for k in range(1, 8):
        feed.push(T0 + k * STEP, register_fwd_kwh=100.0 + 0.1 * k, register_rev_kwh=5.0 + 0.02 * k)
    a = only(feed, "reverse_energy")
    assert a["subject_id"] == "M1" and a["first_seen"] == format_ts(T0 + 4 * STEP)
    ev = a["evidence"]
    assert ev["reverse_growth_kwh"] == pytest.approx(0.06) and ev["reverse_register_kwh"] == pytest.approx(5.08)


def test_a_steady_reverse_register_is_not_reverse_energy() -> None:
    feed = AreaFeed(make_archive(1))
    for k in range(1, 20):
        feed.push(T0 + k * STEP, register_fwd_kwh=100.0 + 0.1 * k, register_rev_kwh=12.34)
    assert none_of(feed, "reverse_energy")


# -- tamper_event ----------------------------------------------------------------------------


def test_tamper_events_raise_at_once_at_the_event_time() -> None:
    feed = AreaFeed(make_archive(2))
    at = T0 + STEP - 319
    out = feed.push(
        T0 + STEP,
        energy_kwh=0.1,
        events=[("M1", "cover_open", at), ("M2", "power_outage", at), ("M2", "magnetic_field", at + 5)],
    )
    tampers = {a["subject_id"]: a for a in out if a["type"] == "tamper_event"}
    assert set(tampers) == {"M1", "M2"}
    assert tampers["M1"]["first_seen"] == format_ts(at) and tampers["M1"]["evidence"] == {
        "event": "cover_open",
        "at": format_ts(at),
    }
    assert tampers["M2"]["evidence"]["event"] == "magnetic_field" and tampers["M1"]["severity"] == "high"


def test_other_events_are_not_tamper() -> None:
    feed = AreaFeed(make_archive(1))
    feed.push(T0 + STEP, energy_kwh=0.1, events=[("M1", "power_outage", T0 + 10), ("M1", "power_restored", T0 + 50)])
    assert none_of(feed, "tamper_event")


# -- over_capacity ---------------------------------------------------------------------------


def test_over_capacity_fires_on_the_second_consecutive_interval() -> None:
    feed = AreaFeed(make_archive(1))  # 8 kVA
    feed.push(T0 + STEP, demand_kw=7.0, power_factor=0.8)  # 8.75 kVA
    assert none_of(feed, "over_capacity")
    feed.push(T0 + 2 * STEP, demand_kw=7.2, power_factor=0.8)
    ev = only(feed, "over_capacity")["evidence"]
    assert ev["apparent_kva"] == pytest.approx(9.0) and ev["contracted_kva"] == 8.0 and ev["consecutive_intervals"] == 2


def test_single_or_broken_overloads_are_not_over_capacity() -> None:
    feed = AreaFeed(make_archive(1))
    feed.push(T0 + STEP, demand_kw=9.0, power_factor=1.0)
    feed.push(T0 + 2 * STEP, demand_kw=5.0, power_factor=1.0)
    feed.push(T0 + 3 * STEP, demand_kw=9.0, power_factor=1.0)
    feed.push(T0 + 5 * STEP, demand_kw=9.0, power_factor=1.0)  # a missing frame breaks the run
    feed.push(T0 + 6 * STEP, demand_kw=7.9)  # no pf: compared as kW, within 8
    assert none_of(feed, "over_capacity")


# -- usage_on_inactive -----------------------------------------------------------------------


def test_usage_on_inactive_fires_for_closed_accounts_only() -> None:
    feed = AreaFeed(make_archive([meter("M1", status="closed"), meter("M2", status="inactive"), meter("M3")]))
    feed.push(T0 + STEP, energy_kwh=[0.5, 0.05, 2.0])
    a = only(feed, "usage_on_inactive")
    assert a["subject_id"] == "M1" and a["evidence"]["status"] == "closed" and a["evidence"]["energy_kwh"] == 0.5


# -- multiplier_mismatch ---------------------------------------------------------------------


def test_multiplier_mismatch_fires_when_sustained_with_the_implied_multiplier() -> None:
    feed = AreaFeed(make_archive([meter("M1", multiplier=40, phases=3, max_current_a=6)]))
    reg = 500.0
    feed.push(T0 + STEP, register_fwd_kwh=reg, energy_kwh=3.0)
    for k in range(2, 7):  # truly ×30: 0.1 on the register is 3 kWh, the archive says 4 kWh
        reg += 0.1
        feed.push(T0 + k * STEP, register_fwd_kwh=reg, energy_kwh=3.0)
    a = only(feed, "multiplier_mismatch")
    assert a["first_seen"] == format_ts(T0 + 5 * STEP)  # the 4th mismatching interval
    ev = a["evidence"]
    assert ev["implied_multiplier"] == pytest.approx(30.0) and ev["archived_multiplier"] == 40.0
    assert (
        ev["reported_kwh"] == 3.0
        and ev["register_energy_kwh"] == pytest.approx(4.0)
        and ev["consecutive_intervals"] == 4
    )


def test_one_rounding_slip_is_not_a_multiplier_mismatch() -> None:
    feed = AreaFeed(make_archive([meter("M1", multiplier=40, phases=3, max_current_a=6)]))
    reg = 500.0
    feed.push(T0 + STEP, register_fwd_kwh=reg, energy_kwh=4.0)
    for k in range(2, 96 + 2):
        reg = round(reg + 0.1, 2)
        reported = 3.0 if k == 10 else 4.0  # one odd interval
        feed.push(T0 + k * STEP, register_fwd_kwh=reg, energy_kwh=reported)
    feed.flush()
    assert none_of(feed, "multiplier_mismatch")


def test_multiplier_mismatch_daily_sum_check() -> None:
    feed = AreaFeed(make_archive([meter("M1", multiplier=40, phases=3, max_current_a=6)]))
    reg = 500.0
    feed.push(T0 + STEP, register_fwd_kwh=reg, energy_kwh=0.0)
    for k in range(2, 96 + 1):
        step = 0.01 if k % 3 == 0 else 0.0  # 0.4 kWh every third interval
        reg = round(reg + step, 2)
        feed.push(T0 + k * STEP, register_fwd_kwh=reg, energy_kwh=0.36 if step else 0.0)  # 10 % low, inside one step
    assert none_of(feed, "multiplier_mismatch")
    for k in range(1, 10):  # the day closes when its grace has passed
        feed.push(T0 + DAY_S + k * STEP, register_fwd_kwh=reg, energy_kwh=0.0)
    ev = only(feed, "multiplier_mismatch")["evidence"]
    assert ev["check"] == "daily_sum" and ev["implied_multiplier"] == pytest.approx(36.0)
    assert ev["reported_sum_kwh"] == pytest.approx(0.36 * 32) and ev["register_energy_kwh"] == pytest.approx(0.4 * 32)


# -- missing_data ----------------------------------------------------------------------------


def test_missing_data_fires_after_four_silent_intervals() -> None:
    feed = AreaFeed(make_archive(3))
    feed.push(T0 + STEP, energy_kwh=0.1)
    for k in range(2, 5):
        feed.push(T0 + k * STEP, meter_ids=["M1", "M2"], energy_kwh=0.1, missing=["M3"])
    assert none_of(feed, "missing_data")  # 3 intervals
    feed.push(T0 + 5 * STEP, meter_ids=["M1", "M2"], energy_kwh=0.1, missing=["M3"])
    a = only(feed, "missing_data")
    assert a["subject_id"] == "M3" and a["subject_kind"] == "meter"
    assert a["evidence"] == {"silent_since": format_ts(T0 + STEP), "missing_intervals": 4, "min_intervals": 4}


def test_missing_data_area_collection_rate() -> None:
    feed = AreaFeed(make_archive(10))
    ids = feed.archive.meter_ids
    for d in range(2):
        for k in range(1, 97):
            silent = d == 1 and k % 2 == 0 and k < 50  # day 2: M10 misses 24 scattered intervals
            feed.push(T0 + d * DAY_S + k * STEP, meter_ids=ids[:-1] if silent else None, energy_kwh=0.1)
    feed.flush()
    areas = [a for a in feed.opened("missing_data") if a["subject_kind"] == "area"]
    [a] = areas  # day 2 only
    ev = a["evidence"]
    assert a["subject_id"] == "A1" and ev["date"] == "2026-01-06"
    assert ev["collection_pct"] == 97.5 and ev["readings"] == 936 and ev["expected_readings"] == 960
    assert ev["meters_incomplete"] == 1 and ev["min_collection_pct"] == 98.0
    assert not [x for x in feed.opened("missing_data") if x["subject_kind"] == "meter"]  # single-interval gaps


def test_missing_data_area_rate_over_an_hour_window() -> None:
    """A tenth of the meters lost for two hours costs the day < 1 %, but each hour 90 %: an area alert."""
    feed = AreaFeed(make_archive(30))
    ids = feed.archive.meter_ids
    for d in range(2):
        for k in range(1, 97):
            lost = set(ids[(k % 10) :: 10]) if d == 1 and 40 <= k < 48 else set()  # 3 of 30, changing each interval
            feed.push(T0 + d * DAY_S + k * STEP, meter_ids=[m for m in ids if m not in lost], energy_kwh=0.1)
    feed.flush()
    [a] = [a for a in feed.opened("missing_data") if a["subject_kind"] == "area"]
    ev = a["evidence"]
    assert ev["date"] == "2026-01-06" and ev["collection_pct"] == 99.17 and ev["window_collection_pct"] == 90.0
    assert ev["window_h"] == 1.0 and ev["window_meters_short"] == 12 and ev["window_start"] == format_ts(T0 + DAY_S + 39 * STEP)
    assert not [x for x in feed.opened("missing_data") if x["subject_kind"] == "meter"]


def test_one_silent_meter_is_not_an_area_collection_failure() -> None:
    """One meter silent for hours (with a stray gap of another) is that meter's alert; the area's window rule needs 3."""
    feed = AreaFeed(make_archive(30))
    ids = feed.archive.meter_ids
    for d in range(2):
        for k in range(1, 97):
            silent = {ids[0]} if d == 1 and 20 <= k < 30 else set()
            if d == 1 and k == 22:
                silent.add(ids[5])
            feed.push(T0 + d * DAY_S + k * STEP, meter_ids=[m for m in ids if m not in silent], energy_kwh=0.1)
    feed.flush()
    assert not [a for a in feed.opened("missing_data") if a["subject_kind"] == "area"]
    assert [a["subject_id"] for a in feed.opened("missing_data")] == [ids[0]]


# -- duplicate_data --------------------------------------------------------------------------


def test_duplicate_data_fires_on_differing_values() -> None:
    feed = AreaFeed(make_archive(2))
    conflict = {"meter_id": "M2", "field": "energy_kwh", "kept": 0.31, "other": 0.35}
    feed.push(T0 + STEP, energy_kwh=[0.1, 0.31], conflicts=[conflict])
    ev = only(feed, "duplicate_data")["evidence"]
    assert ev["kept"] == 0.31 and ev["other"] == 0.35 and ev["diff_pct"] == pytest.approx(11.429, abs=1e-3)
    # a late re-send differing from the kept reading is a duplicate too
    feed.push(T0 + 2 * STEP, energy_kwh=[0.2, 0.2])
    feed.push(T0 + 2 * STEP, meter_ids=["M1"], energy_kwh=0.25, revision=1)
    assert {a["subject_id"] for a in feed.opened("duplicate_data")} == {"M1", "M2"}


def test_identical_or_negligible_duplicates_are_merged_silently() -> None:
    feed = AreaFeed(make_archive(2))
    feed.push(T0 + STEP, energy_kwh=[0.1, 0.2])
    feed.push(T0 + STEP, meter_ids=["M1"], energy_kwh=0.1, revision=1)  # identical re-send
    tiny = {"meter_id": "M2", "field": "energy_kwh", "kept": 10.0, "other": 10.005}  # 0.05 %
    feed.push(T0 + 2 * STEP, energy_kwh=[0.1, 10.0], conflicts=[tiny])
    assert none_of(feed, "duplicate_data")


# -- data faults are not anomalies -----------------------------------------------------------

EVENT_TYPES = {
    "register_decrease", "meter_stopped", "meter_flying", "clock_skew", "voltage_loss", "current_loss",
    "reverse_energy", "tamper_event", "over_capacity", "usage_on_inactive", "multiplier_mismatch",
    "missing_data", "duplicate_data",
}  # fmt: skip


def test_data_faults_raise_no_event_alert() -> None:
    """Gaps, re-sends, late and out-of-order uploads, a meter replacement: none is an anomaly."""
    archive = [
        meter("M1"),
        meter("M2", multiplier=20, phases=3, customer_class="commercial", contracted_kva=50),
        meter("M3"),
    ]
    feed = AreaFeed(make_archive(archive))
    rng = np.random.default_rng(7)
    reg = np.array([1000.0, 300.0, 50.0])
    mult = np.array([1.0, 20.0, 1.0])
    frames: list[tuple[int, dict[str, Any]]] = []
    for k in range(1, 2 * 96 + 12):
        step = np.round(rng.uniform(0.01, 0.2, 3), 2)
        reg = np.round(reg + step, 2)
        cols: dict[str, Any] = {
            "energy_kwh": list(step * mult),
            "register_fwd_kwh": list(reg),
            "register_rev_kwh": 0.0,
            "voltage_a_v": 229.0,
            "current_a_a": 2.0,
            "power_factor": 0.95,
            "demand_kw": list(step * mult * 4),
            "clock_offset_s": 3.0,
        }
        if k == 40:  # the meter is replaced: new register near 0, event, new archive record
            reg[2] = 0.05
            cols["register_fwd_kwh"] = list(reg)
            cols["energy_kwh"] = [step[0], step[1] * 20, None]
            cols["events"] = [("M3", "meter_replaced", T0 + k * STEP - 100)]
        frames.append((T0 + k * STEP, cols))
    order = list(range(len(frames)))
    order[10], order[11] = order[11], order[10]  # out of order (ingest held an incomplete frame back)
    order.remove(95)
    order.insert(101, 95)  # the 24:00 upload arrives 6 intervals late
    for n, i in enumerate(order):
        ts, cols = frames[i]
        cols = dict(cols)
        events = cols.pop("events", ())
        if i == 39:
            feed.archive = make_archive([*archive[:2], meter("M3", installed_at=format_ts(ts + 600))])
        late = n != i and i in (10, 95)
        if i == 60:  # one meter's reading is never delivered
            feed.push(ts, meter_ids=["M1", "M2"], **{c: v[:2] if isinstance(v, list) else v for c, v in cols.items()})
            continue
        feed.push(ts, revision=1 if late and i == 95 else 0, events=events, **cols)
        if i == 20:  # the upload is re-sent byte for byte
            feed.push(ts, revision=1, events=events, **cols)
    feed.flush()
    assert [a for a in feed.alerts if a["type"] in EVENT_TYPES] == []
