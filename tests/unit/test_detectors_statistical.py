"""Statistical detectors: for each, a case that fires (with the numbers in its evidence) and cases that must not.

Daily rules run on synthetic areas (``tests/unit/synthetic_area.py``: four
weeks and more of realistic household history, an area meter that sees the
true consumption). Data faults and per-interval rules run through the real
pipeline (``AreaFeed``) so they are tested where the faults are handled.
"""

from __future__ import annotations

import doctest
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from services.detector.day import DayView
from services.detector.detectors import DETECTORS
from services.detector.detectors.consumption import ConsumptionFamily
from services.detector.detectors.current_imbalance import CurrentImbalance
from services.detector.detectors.current_loss import CurrentLoss
from services.detector.detectors.interval_spike import IntervalSpike
from services.detector.detectors.low_power_factor import LowPowerFactor
from services.detector.detectors import wrong_area
from services.detector.detectors.wrong_area import (
    AreaVoltageDay,
    InMemoryVoltageDirectory,
    MappingVoltageDirectory,
    WrongAreaVoltage,
    with_voltage_directory,
)
from services.detector.eventtime import DAY_S, format_ts
from services.detector.findings import Finding
from services.detector.thresholds import load_thresholds
from tests.unit.detector_frames import T0, AreaFeed, make_archive, meter
from tests.unit.synthetic_area import IPD, SyntheticArea, day_view, run_days

FAMILY = next(d for d in DETECTORS if isinstance(d, ConsumptionFamily))
TH = load_thresholds().for_area("A1")
START = 35  # attacks start after five weeks of history
DAYS = START + 10


def of(out: list[list[Finding]], type_: str, subject: str | None = None) -> list[Finding]:
    return [f for day in out for f in day if f.type == type_ and (subject is None or f.subject_id == subject)]


def first_day(out: list[list[Finding]], type_: str, subject: str) -> int | None:
    return next((d for d, day in enumerate(out) for f in day if f.type == type_ and f.subject_id == subject), None)


def on_meter(row: int, from_day: int, change: Callable[[int, np.ndarray], np.ndarray], until: int = 10**6):
    """An edit of the reported data: ``change(day, row's 96 values)`` from ``from_day`` on."""

    def edit(d: int, x: np.ndarray) -> np.ndarray:
        if from_day <= d < until:
            x[row] = change(d, x[row].copy())
        return x

    return edit


# -- consumption_swing -------------------------------------------------------------------------


def test_swing_up_fires_with_baseline_z_and_hours() -> None:
    area = SyntheticArea(n=30, seed=21)
    out, _ = run_days(FAMILY, area, START + 1, on_meter(2, START, lambda d, v: v * 2.5))
    [f] = of(out, "consumption_swing", "M3")
    ev = f.evidence
    assert ev["direction"] == "up" and ev["deviation_pct"] >= 50.0 and ev["robust_z"] >= 4.0
    assert ev["observed_kwh_day"] - ev["baseline_kwh_day"] >= 2.0
    assert ev["baseline"].startswith("median of the same weekday over 4 past weeks")
    assert ev["baseline_kwh_day"] == pytest.approx(ev["weekday_median_kwh_day"] * ev["area_change"], rel=1e-3)
    assert len(ev["hours"]) == 3 and all(h["observed_kwh"] > h["usual_kwh"] for h in ev["hours"])
    assert f.ts == T0 + (START + 1) * DAY_S and f.severity == "medium" and 0.5 <= f.score <= 1.0


def test_swing_down_fires_unless_an_outage_explains_it() -> None:
    area = SyntheticArea(n=30, seed=22)
    down = on_meter(4, START, lambda d, v: v * 0.25)
    out, _ = run_days(FAMILY, area, START + 1, down)
    assert of(out, "consumption_swing", "M5")[0].evidence["direction"] == "down"
    area = SyntheticArea(n=30, seed=22)
    out, _ = run_days(FAMILY, area, START + 1, down, events=lambda d: [("M5", "power_outage")] if d == START else [])
    assert not of(out, "consumption_swing", "M5")


def test_ordinary_busy_days_are_not_swings() -> None:
    """Eight weeks of 30 households with multiplicative day-to-day noise (σ ≈ 12 %): no swing at all.

    On the linear scale a +50 % day is a 4σ outlier and such days do occur
    (the noise is right-skewed); on the log scale it is a 3.4σ one.
    """
    area = SyntheticArea(n=30, seed=24)
    out, _ = run_days(FAMILY, area, 56)
    assert not of(out, "consumption_swing")


def test_small_changes_are_not_swings() -> None:
    area = SyntheticArea(n=30, seed=23)
    area.level[6] = 1.0  # a tiny meter doubling: +1 kWh/day is below min_abs_kwh_day
    edits = [on_meter(5, START, lambda d, v: v * 1.3), on_meter(6, START, lambda d, v: v * 2.0)]
    out, _ = run_days(FAMILY, area, START + 1, lambda d, x: edits[1](d, edits[0](d, x)))
    assert not of(out, "consumption_swing", "M6") and not of(out, "consumption_swing", "M7")


def _calm_then(row: int, today: float) -> Callable[[int, np.ndarray], np.ndarray]:
    """Meter ``row`` reports four calm weeks (day-to-day noise ≈ 2 %, a σ that came out small by chance), then × ``today``."""

    calm = np.exp(np.random.default_rng(5).normal(0.0, 0.02, DAYS))

    def edit(d: int, x: np.ndarray) -> np.ndarray:
        if d < START:
            x[row] = x[row] / x[row].sum() * 10.0 * calm[d] * (1.1 if d % 7 >= 5 else 1.0)
        elif d == START:
            x[row] = x[row] / x[row].sum() * 10.0 * today * (1.1 if d % 7 >= 5 else 1.0)
        return x

    return edit


def test_a_lucky_small_scale_does_not_make_a_busy_day_a_swing(tmp_path: Any) -> None:
    """A +60 % day on a meter whose own σ came out small is judged against its peers' σ: no swing.

    Its own σ (the ``[consumption] min_scale_pct`` floor, 5 % in ln) would make
    it z ≈ 8; against the median σ of its 29 neighbours (≈ 12 %) it is an
    ordinary busy day (z ≈ 3). Without the peer floor the same day fires.
    """
    area = SyntheticArea(n=30, seed=27)
    out, _ = run_days(FAMILY, area, START + 1, _calm_then(3, 1.6))
    assert not of(out, "consumption_swing", "M4")
    path = tmp_path / "no_floor.toml"
    path.write_text("[consumption_swing]\npeer_scale_floor = 0.0\n")
    area = SyntheticArea(n=30, seed=27)
    out, _ = run_days(FAMILY, area, START + 1, _calm_then(3, 1.6), th=load_thresholds(path))
    [f] = of(out, "consumption_swing", "M4")
    assert f.evidence["robust_z"] >= 4.0 and f.evidence["z_sigma_ln"] < f.evidence["peer_scale_ln"]


def test_a_calm_meter_still_swings_as_far_as_its_peers_would() -> None:
    """The floor only raises σ to the peers': a calm meter tripling its day is still a swing, judged on their σ."""
    area = SyntheticArea(n=30, seed=27)
    out, _ = run_days(FAMILY, area, START + 1, _calm_then(3, 3.0))
    [f] = of(out, "consumption_swing", "M4")
    ev = f.evidence
    assert ev["direction"] == "up" and ev["robust_z"] >= 4.0
    assert 0.08 <= ev["peer_scale_ln"] <= 0.2  # the households' ≈ 12 % day-to-day noise
    assert ev["z_sigma_ln"] >= ev["peer_scale_ln"]  # σ × √(1 + π/(2k)) of the floored scale


def test_the_peer_floor_needs_enough_peers(tmp_path: Any) -> None:
    """With fewer peers of the class than ``peer_min_meters`` the meter's own σ stands (the +60 % calm day fires)."""
    path = tmp_path / "few_peers.toml"
    path.write_text("[consumption_swing]\npeer_min_meters = 31\n")
    area = SyntheticArea(n=30, seed=27)
    out, _ = run_days(FAMILY, area, START + 1, _calm_then(3, 1.6), th=load_thresholds(path))
    [f] = of(out, "consumption_swing", "M4")
    assert f.evidence["peer_scale_ln"] is None  # no peer median: shown as null


def _pv_area(seed: int) -> SyntheticArea:
    """30 households, the first six with rooftop PV (the archive says so)."""
    area = SyntheticArea(n=30, seed=seed)
    area.archive = make_archive([meter(f"M{i + 1}", has_generation=i < 6) for i in range(area.n)])
    return area


def _pv_import(cloudy_day: int, factor: dict[int, float] | None = None) -> Callable[[int, np.ndarray], np.ndarray]:
    """What the PV customers meter: their use × ``factor`` minus their roof's output (sunny weeks, one overcast day)."""
    hours = (np.arange(IPD) + 0.5) * 24 / IPD
    sun = np.clip(np.sin(np.pi * (hours - 5.0) / 14.0), 0.0, None)  # a summer day's output, 3 × the day's use

    def edit(d: int, x: np.ndarray) -> np.ndarray:
        for row in range(6):
            use = x[row] * (factor or {}).get(row, 1.0) if d == cloudy_day else x[row]
            pv = sun / sun.sum() * 3.0 * x[row].sum() * (0.05 if d == cloudy_day else 1.0)
            x[row] = np.maximum(use - pv, 0.0)
        return x

    return edit


def test_an_overcast_day_is_not_a_swing_of_the_pv_customers(tmp_path: Any) -> None:
    """Every PV roof of the area imports more on an overcast day: judged against their common change, no swing.

    Against the area's change (the households without PV did not move)
    the same day is a swing. Nor is the overcast day a swing of part of
    their day (their daylight hours filled, where the usual profile of
    their import has next to nothing): hours are not judged for them.
    """
    out, _ = run_days(FAMILY, _pv_area(28), START + 1, consume=_pv_import(START))
    assert not of(out, "consumption_swing")
    path = tmp_path / "no_generation_change.toml"
    path.write_text("[consumption_swing]\ngeneration_min_meters = 1000\n")
    out, _ = run_days(FAMILY, _pv_area(28), START + 1, consume=_pv_import(START), th=load_thresholds(path))
    assert of(out, "consumption_swing")


def test_a_pv_customer_tripling_its_use_is_still_a_swing() -> None:
    out, _ = run_days(FAMILY, _pv_area(28), START + 1, consume=_pv_import(START, {2: 3.0}))
    [f] = of(out, "consumption_swing")
    ev = f.evidence
    assert f.subject_id == "M3" and ev["direction"] == "up" and ev["robust_z"] >= 4.0
    assert "generation customers" in ev["baseline"] and ev["area_change"] > 1.5  # the overcast day, shared


# -- sustained_drop ----------------------------------------------------------------------------


def test_sustained_drop_fires_after_three_low_days() -> None:
    area = SyntheticArea(n=30, seed=24)
    out, _ = run_days(FAMILY, area, START + 5, on_meter(7, START, lambda d, v: v * 0.45))
    drops = of(out, "sustained_drop", "M8")
    assert first_day(out, "sustained_drop", "M8") == START + 2
    ev = drops[0].evidence
    assert ev["days"] == 3 and ev["drop_pct"] >= 40.0 and ev["cusum"] >= ev["cusum_h"] == 5.0
    assert ev["observed_mean_kwh_day"] < 0.6 * ev["baseline_kwh_day"]
    assert ev["area_median_ratio"] == pytest.approx(1.0, abs=0.1)


def test_area_wide_change_and_single_low_days_are_not_drops() -> None:
    area = SyntheticArea(n=30, seed=25)

    def holiday_and_dip(d: int, x: np.ndarray) -> np.ndarray:
        if START <= d < START + 4:
            x *= 0.5  # everyone: a holiday, a mild spell
        if d == START + 6:
            x[3] *= 0.3  # one meter, one day
        return x

    out, _ = run_days(FAMILY, area, START + 8, consume=holiday_and_dip)
    assert not of(out, "sustained_drop") and not of(out, "theft_suspected")


# -- zero_consumption ---------------------------------------------------------------------------


def test_zero_consumption_fires_after_seven_days() -> None:
    area = SyntheticArea(n=20, seed=26)
    out, _ = run_days(FAMILY, area, START + 8, on_meter(1, START, lambda d, v: v * 0.0))
    assert first_day(out, "zero_consumption", "M2") == START + 6
    ev = of(out, "zero_consumption", "M2")[0].evidence
    assert ev["zero_days"] == 7 and ev["observed_kwh_day"] == 0.0 and ev["baseline_kwh_day"] >= 1.0
    assert ev["account_status"] == "active"


def test_zero_days_explained_by_outages_or_on_closed_accounts_do_not_count() -> None:
    area = SyntheticArea(n=20, seed=26)
    zero = on_meter(1, START, lambda d, v: v * 0.0)
    out, _ = run_days(FAMILY, area, START + 8, zero, events=lambda d: [("M2", "power_outage")] if d >= START else [])
    assert not of(out, "zero_consumption")
    area = SyntheticArea(n=20, seed=26)
    area.archive = make_archive([meter(f"M{i + 1}", status="closed" if i == 1 else "active") for i in range(20)])
    out, _ = run_days(FAMILY, area, START + 8, zero)
    assert not of(out, "zero_consumption")


# -- theft_suspected: the six false-data attacks (Jokar et al. 2016) ------------------------------

RNG = np.random.default_rng(2016)
HOURS = (np.arange(IPD) + 0.5) * 24 / IPD


def h2(d: int, v: np.ndarray) -> np.ndarray:
    off = RNG.uniform(4.0, 12.0)
    start = RNG.uniform(0.0, 24.0 - off)
    return np.where((HOURS >= start) & (HOURS < start + off), 0.0, v)


ATTACKS: dict[str, Callable[[int, np.ndarray], np.ndarray]] = {
    "h1": lambda d, v: v * 0.4,
    "h1_alpha_0.6": lambda d, v: v * 0.6,
    "h2": h2,
    "h3": lambda d, v: v * RNG.uniform(0.1, 0.8, IPD),
    "h4": lambda d, v: v.mean() * RNG.uniform(0.1, 0.8, IPD),
    "h5": lambda d, v: np.full(IPD, v.mean()),
    "h6": lambda d, v: v[::-1].copy(),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_false_data_attack_scores_above_the_theft_threshold(attack: str) -> None:
    area = SyntheticArea(n=30, seed=31)
    out, state = run_days(FAMILY, area, DAYS, on_meter(0, START, ATTACKS[attack]))
    theft = of(out, "theft_suspected", "M1")
    assert theft, f"{attack} not caught"
    assert first_day(out, "theft_suspected", "M1") <= START + 6
    f = theft[0]
    assert f.score >= TH.num("theft_suspected", "min_score") and f.severity == "high"
    contributions = f.evidence["contributions"]
    assert contributions and all(0.0 < v <= 1.0 for v in contributions.values())
    expected = {"h5": {"flattening"}, "h6": {"decorrelation"}, "h2": {"zero_window"}}.get(attack, {"sustained_drop", "area_loss"})
    assert expected & set(contributions)
    if attack in ("h1", "h3"):
        match = f.evidence["loss_match"]  # the stolen energy shows up as area loss, the size of the deficit
        assert match["log_likelihood_ratio"] > 1.0 and match["coverage"] > 0.7
    assert not of(out, "theft_suspected", "M2") and not [t for t in of(out, "theft_suspected") if t.subject_id != "M1"]


def test_a_normal_meter_with_the_same_noise_is_not_a_thief() -> None:
    area = SyntheticArea(n=30, seed=31)
    out, state = run_days(FAMILY, area, DAYS)
    assert not of(out, "theft_suspected") and not of(out, "sustained_drop")
    assert state["theft_score"].max() < TH.num("theft_suspected", "min_score") - 0.2  # a margin, not a near miss


def test_a_quiet_holiday_week_is_a_drop_but_not_theft() -> None:
    area = SyntheticArea(n=30, seed=32)
    fridge = np.full(IPD, 0.02)  # everyone away: a fridge's flat 2 kWh/day, really used, so no area loss
    away = on_meter(0, START, lambda d, v: fridge * np.exp(RNG.normal(0, 0.1, IPD)))
    out, _ = run_days(FAMILY, area, DAYS, consume=away)
    assert of(out, "sustained_drop", "M1")
    assert not of(out, "theft_suspected")


def test_tamper_event_adds_to_a_drop_and_alone_is_not_theft() -> None:
    area = SyntheticArea(n=30, seed=33)
    events = lambda d: [("M1", "magnetic_field")] if d == START else []  # noqa: E731
    out, _ = run_days(FAMILY, area, DAYS, on_meter(0, START, lambda d, v: v * 0.65), events=events)
    theft = of(out, "theft_suspected", "M1")
    assert theft and theft[0].evidence["contributions"]["tamper"] > 0.2
    assert theft[0].evidence["tamper_days_ago"] >= 0
    area = SyntheticArea(n=30, seed=33)
    out, _ = run_days(FAMILY, area, DAYS, events=events)
    assert not of(out, "theft_suspected")


def test_dead_phase_under_load_contributes_to_theft() -> None:
    area = SyntheticArea(n=30, seed=34)
    area.archive = make_archive(
        [meter("M1", phases=3, customer_class="commercial", contracted_kva=50, basic_current_a=10)]
        + [meter(f"M{i + 1}") for i in range(1, 30)]
    )
    state = FAMILY.init_state(30)
    found: list[Finding] = []
    for d in range(DAYS):
        true = area.true(d)
        reported = true.copy()
        current = np.full((30, 3), np.nan)
        current[0] = [6.0, 6.2, 5.9]
        if d >= START:
            reported[0] *= 2 / 3  # one CT shorted: a third of the energy is not measured
            current[0, 2] = 0.0
        view = day_view(area.archive, d, reported, area.area(true), phase_current_a=current)
        found += FAMILY.on_day(view, area.archive, state, TH)
    theft = [f for f in found if f.type == "theft_suspected"]
    assert theft and {f.subject_id for f in theft} == {"M1"}
    assert theft[0].evidence["contributions"]["phase"] == pytest.approx(TH.num("theft_suspected", "w_phase"))
    assert theft[0].evidence["phase_imbalance_pct"] == 100.0


def test_a_meter_that_stopped_recording_is_not_a_thief() -> None:
    """A stall from mid-afternoon for two and a half days (meter_stopped): the area sees the energy, yet no theft."""
    area = SyntheticArea(n=30, seed=37)
    stop = on_meter(0, START, lambda d, v: np.where(np.arange(IPD) >= 60, 0.0, v) if d == START else v * 0.0, until=START + 3)
    restart = on_meter(0, START + 3, lambda d, v: np.where(np.arange(IPD) < 40, 0.0, v), until=START + 4)
    out, _ = run_days(FAMILY, area, DAYS, lambda d, x: restart(d, stop(d, x)))
    assert not of(out, "theft_suspected")


def test_a_reported_current_loss_explains_the_drop_and_a_dead_phase_without_event_does_not() -> None:
    area = SyntheticArea(n=30, seed=38)
    events = lambda d: [("M1", "current_loss")] if d == START else []  # noqa: E731
    loss = on_meter(0, START, lambda d, v: v * 2 / 3, until=START + 3)  # the meter's own event: a metering fault
    out, _ = run_days(FAMILY, area, DAYS, loss, events=events)
    assert not of(out, "theft_suspected")
    area = SyntheticArea(n=30, seed=38)
    out, _ = run_days(FAMILY, area, DAYS, on_meter(0, START, lambda d, v: v * 0.4))
    assert of(out, "theft_suspected", "M1")  # the same feed without the event, a deeper lasting drop: theft


# -- data faults never become theft, swings or loss ------------------------------------------------

QUIET = ("theft_suspected", "consumption_swing", "sustained_drop", "zero_consumption", "interval_spike", "area_high_loss", "area_negative_loss")


def test_a_gap_day_is_not_judged() -> None:
    area = SyntheticArea(n=30, seed=35)

    def gap(d: int, x: np.ndarray) -> np.ndarray:
        if d == START:
            x[0, 20:70] = np.nan  # 12.5 hours without readings
            x[1] = np.nan  # a whole day without readings
        return x

    out, _ = run_days(FAMILY, area, START + 3, gap)
    assert not [f for day in out for f in day if f.type in QUIET and f.subject_id in ("M1", "M2", "A1")]


@pytest.mark.parametrize("thief", [False, True])
def test_data_faults_through_the_pipeline_raise_no_consumption_alert(thief: bool) -> None:
    """A gap, a conflicting re-send, a late upload and a meter replacement over 3 weeks of 30-minute data.

    The same feed with a thief (M7 reports 40 % from day 17) is the control:
    the pipeline path does reach the statistical detectors.
    """
    area = SyntheticArea(n=8, seed=36)
    archive = [meter(f"M{i + 1}") for i in range(8)]
    feed = AreaFeed(make_archive(archive))
    days, ipd = 24, 48
    late: list[tuple[int, dict[str, Any]]] = []
    area_register = 1000.0
    for d in range(days):
        true = area.true(d)
        half = true.reshape(8, ipd, 2).sum(axis=2)
        supplied = area.area(true).reshape(ipd, 2).sum(axis=1)
        for k in range(ipd):
            ts = T0 + d * DAY_S + (k + 1) * 1800
            energy: list[float | None] = [round(float(e), 4) for e in half[:, k]]
            if thief and d >= 17:
                energy[6] = round(0.4 * float(half[6, k]), 4)
            ids = list(feed.archive.meter_ids)
            events: list[tuple[str, str, int]] = []
            if d == 20 and 10 <= k < 20:  # M2 silent for 5 hours
                ids.remove("M2")
                energy = [e for m, e in zip(feed.archive.meter_ids, energy, strict=True) if m != "M2"]
            if d == 21 and k == 30:  # M3 replaced: event and new archive record
                events = [("M3", "meter_replaced", ts - 600)]
                feed.archive = make_archive([*archive[:2], meter("M3", installed_at=format_ts(ts - 600)), *archive[3:]])
            if d == 22 and k < 12:  # M4's first 6 hours of the day arrive after the day closed
                late.append((ts, {"energy_kwh": [energy[3]]}))
                ids.remove("M4")
                energy = energy[:3] + energy[4:]
            area_register += float(supplied[k])
            area_meter = {"meter_id": "T1", "energy_kwh": float(supplied[k]), "register_fwd_kwh": round(area_register, 3)}
            feed.push(ts, ids, energy_kwh=energy, events=events, area_meter=area_meter, interval_minutes=30)
            if d == 23 and k == 0:
                for late_ts, cols in late:
                    feed.push(late_ts, ["M4"], revision=1, interval_minutes=30, **cols)
            if d == 23 and k == 5:  # M5's reading re-sent with another value
                feed.push(ts, ["M5"], revision=1, interval_minutes=30, energy_kwh=[energy[4] * 1.3])
    feed.flush()
    opened = {(a["type"], a["subject_id"]) for a in feed.alerts if a["op"] == "open"}
    if thief:
        assert ("theft_suspected", "M7") in opened and ("sustained_drop", "M7") in opened
        opened = {o for o in opened if o[1] != "M7" and o[0] != "area_high_loss"}
    assert not [o for o in opened if o[0] in QUIET], opened
    assert ("area_loss_uncomputable", "A1") in opened  # M2's silent hours cost coverage that day, and say so


# -- interval_spike -----------------------------------------------------------------------------


def spike_days(days: int, edit: Callable[[int, np.ndarray], np.ndarray]) -> list[list[Finding]]:
    area = SyntheticArea(n=10, seed=37)
    det = IntervalSpike()
    state = det.init_state(10)
    out = []
    for d in range(days):
        x = edit(d, area.true(d))
        out.append(det.on_day(day_view(area.archive, d, x, None), area.archive, state, TH))
    return out


def test_interval_spike_fires_on_one_implausible_interval() -> None:
    def spike(d: int, x: np.ndarray) -> np.ndarray:
        if d == 20:
            x[2, 50] = 6.0 * x[2].max()
        return x

    out = spike_days(21, spike)
    [f] = of(out, "interval_spike")
    ev = f.evidence
    assert f.subject_id == "M3" and ev["interval_end_minute"] == 51 * 15
    assert ev["highest_kwh"] > 2.5 * ev["third_highest_kwh"] and ev["highest_kwh"] > ev["peak_history_kwh"]


def test_an_interval_beyond_the_meters_rating_is_meter_flying_not_a_spike() -> None:
    """Day 19 reads 1,000 kWh in one interval (beyond any rating: meter_flying's); it neither fires interval_spike nor
    teaches the peak history, so day 20's ordinary spike still stands out."""

    def flying_then_spike(d: int, x: np.ndarray) -> np.ndarray:
        if d == 19:
            x[2, 40] = 1000.0
        if d == 20:
            x[2, 50] = 6.0 * x[2].max()
        return x

    out = spike_days(21, flying_then_spike)
    assert not of(out[:20], "interval_spike")
    [f] = of(out, "interval_spike")
    assert f.evidence["interval_end_minute"] == 51 * 15 and f.evidence["peak_history_kwh"] < 10.0


def test_a_daily_appliance_peak_is_not_a_spike() -> None:
    def kettle(d: int, x: np.ndarray) -> np.ndarray:
        x[2, 28:30] += 0.8  # the same half-hour load every morning
        return x

    out = spike_days(21, kettle)
    assert len(of(out, "interval_spike")) == 0


def current_backed_feed(
    seed: int,
    top_kwh: float,
    vi_kwh: float,
    shoulder_kwh: float | None = None,
    demand_kwh: float | None = None,
    usual_peak_kwh: float = 0.3,
) -> AreaFeed:
    """Ten days of one meter (220 V, pf 1, 15 min) with a ``usual_peak_kwh`` evening peak; on the tenth the peak
    reads ``top_kwh`` while the current implies ``vi_kwh`` and the demand ``demand_kwh`` (None: no demand
    reported). ``shoulder_kwh``: two more intervals at that level every day."""
    feed = AreaFeed(make_archive(1), detectors=(IntervalSpike(),))
    rng = np.random.default_rng(seed)
    for d in range(10):
        energy = 0.1 + 0.05 * rng.random(96)
        if shoulder_kwh is not None:
            energy[[70, 71]] = shoulder_kwh
        energy[76] = usual_peak_kwh if d < 9 else top_kwh
        for k in range(96):
            top = d == 9 and k == 76
            kwh = vi_kwh if top else energy[k]  # the energy the current carries
            demand = {"demand_kw": 4 * demand_kwh} if (top and demand_kwh is not None) else {}
            feed.push(T0 + d * DAY_S + (k + 1) * 900, energy_kwh=energy[k], voltage_a_v=220.0,
                      current_a_a=kwh * 4 * 1000 / 220, power_factor=1.0, **demand)
    feed.flush()
    return feed


@pytest.mark.parametrize("backed", [False, True])
def test_a_spike_the_meters_current_confirms_is_load_not_an_implausible_interval(backed: bool) -> None:
    """Same readings (one interval of 2 kWh, 8 kW, on day 10); only the current at it differs."""
    feed = current_backed_feed(5, top_kwh=2.0, vi_kwh=2.0 if backed else 0.3)
    spikes = feed.opened("interval_spike")
    if backed:
        assert not spikes
    else:
        [alert] = spikes
        ev = alert["evidence"]
        assert ev["highest_kwh"] == 2.0 and ev["instantaneous_kwh"] == pytest.approx(0.3, rel=1e-3)


@pytest.mark.parametrize("backed", [False, True])
def test_a_peak_just_at_the_tolerance_that_the_current_carries_is_load(backed: bool) -> None:
    """The top interval is 2.525 × the third-highest; the current implies 0.998 kWh of its 1.01, a hair under 2.5 ×."""
    feed = current_backed_feed(6, top_kwh=1.01, vi_kwh=0.998 if backed else 0.3, shoulder_kwh=0.4)
    assert len(feed.opened("interval_spike")) == (0 if backed else 1)


# -- low_power_factor --------------------------------------------------------------------------


def test_low_power_factor_uses_the_customer_class_limits() -> None:
    archive = make_archive(
        [
            meter("BIG", customer_class="industrial", contracted_kva=150),
            meter("HOME", customer_class="residential"),
            meter("HOME2", customer_class="residential"),
            meter("SHOP", customer_class="commercial"),
            meter("IDLE", customer_class="industrial", contracted_kva=150),
        ]
    )
    energy = np.full((5, IPD), 0.2)
    energy[4] = 0.005  # under 1 kWh/day
    view = day_view(archive, 0, energy, None, mean_pf=np.array([0.88, 0.88, 0.75, 0.84, 0.5]))
    found = {f.subject_id: f for f in LowPowerFactor().on_day(view, archive, {}, TH)}
    assert set(found) == {"BIG", "HOME2", "SHOP"}
    assert found["BIG"].evidence["limit"] == 0.9 and found["BIG"].evidence["power_factor"] == 0.88
    assert found["HOME2"].evidence["limit"] == 0.8 and found["SHOP"].evidence["limit"] == 0.85


# -- current_imbalance --------------------------------------------------------------------------


def imbalance_feed(currents: tuple[float, float, float], intervals: int) -> AreaFeed:
    archive = make_archive([meter("M1", phases=3, customer_class="commercial", basic_current_a=10)])
    feed = AreaFeed(archive, detectors=(CurrentImbalance(), CurrentLoss()))
    a, b, c = currents
    for k in range(1, intervals + 1):
        feed.push(T0 + k * 900, energy_kwh=1.0, current_a_a=a, current_b_a=b, current_c_a=c, voltage_a_v=220, voltage_b_v=220, voltage_c_v=220)
    feed.flush()
    return feed


def test_current_imbalance_sustained_under_load_fires() -> None:
    feed = imbalance_feed((10.0, 9.5, 4.0), 96)
    [alert] = feed.opened("current_imbalance")
    ev = alert["evidence"]
    assert ev["imbalanced_intervals"] == ev["loaded_intervals"] == 96 and ev["longest_run_intervals"] == 96
    assert ev["imbalanced_share_pct"] == 100.0 and ev["mean_phase_current_a"] == [10.0, 9.5, 4.0]


def test_balanced_or_unloaded_phases_are_not_imbalance() -> None:
    assert not imbalance_feed((10.0, 9.0, 8.0), 96).opened("current_imbalance")
    assert not imbalance_feed((0.4, 0.1, 0.0), 96).opened("current_imbalance")  # below 5 % of Ib


def test_a_dead_phase_is_current_loss_not_imbalance_too() -> None:
    feed = imbalance_feed((10.0, 9.5, 0.0), 96)
    assert not feed.opened("current_imbalance")
    assert feed.opened("current_loss"), "the dead phase is still reported, once, as current loss"


# -- wrong_area: voltage profiles across areas ----------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "mapping"])
def test_meter_whose_voltage_follows_another_area_is_flagged(kind: str) -> None:
    # "mapping": the Faust app's global table (area id → bytes), here a dict
    directory = InMemoryVoltageDirectory() if kind == "memory" else MappingVoltageDirectory({})
    rng = np.random.default_rng(38)
    hours = np.arange(96) / 4
    profile = {"A1": 230 - 6 * np.sin((hours - 8) / 24 * 2 * np.pi), "A2": 230 - 6 * np.sin((hours - 20) / 24 * 2 * np.pi)}
    feeds = {
        area: AreaFeed(make_archive(6, area_id=area), detectors=(WrongAreaVoltage(directory),)) for area in ("A2", "A1")
    }
    days = TH.count("wrong_area", "min_days") + 1
    for d in range(days):
        for k in range(96):
            ts = T0 + d * DAY_S + (k + 1) * 900
            for area, feed in feeds.items():
                v = profile[area][k] + rng.normal(0, 0.8, 6)
                if area == "A1":
                    v[3] = profile["A2"][k] + rng.normal(0, 0.8)  # M4 is fed by A2's transformer
                feed.push(ts, energy_kwh=0.1, voltage_a_v=v)
    for feed in feeds.values():
        feed.flush()
    [alert] = feeds["A1"].opened("wrong_area")
    ev = alert["evidence"]
    assert alert["subject_id"] == "M4" and ev["other_area_id"] == "A2" and ev["days"] == TH.count("wrong_area", "min_days")
    assert ev["other_area_r"] - ev["own_area_r"] >= TH.num("wrong_area", "min_corr_margin")
    assert not feeds["A2"].opened("wrong_area")


def test_mapping_directory_keeps_two_days_per_area_and_lists_peers_only() -> None:
    table: dict[bytes, bytes] = {}
    directory = MappingVoltageDirectory(table)
    for day in (10, 11, 12):
        for area in ("A1", "A2", "A3"):
            directory.publish(AreaVoltageDay(area, day, np.full(24, day / 100.0)))
    directory.publish(AreaVoltageDay("A2", 12, np.full(24, np.nan)))  # a re-publication replaces the day
    assert sorted(table) == [b"A1", b"A2", b"A3"]
    assert [p.area_id for p in directory.peers("A1", 12)] == ["A2", "A3"]
    assert np.isnan(directory.peers("A1", 12)[0].profile).all() and directory.peers("A1", 10) == []
    assert [p.day_no for p in MappingVoltageDirectory(table).peers("A3", 11)] == [11, 11]  # a restarted reader


def test_the_registry_voltage_rule_gets_the_directory_it_is_given() -> None:
    directory = InMemoryVoltageDirectory()
    wired = with_voltage_directory(DETECTORS, directory)
    [rule] = [d for d in wired if isinstance(d, WrongAreaVoltage)]
    assert rule.directory is directory and len(wired) == len(DETECTORS)
    assert all(a is b for a, b in zip(wired, DETECTORS, strict=True) if not isinstance(a, WrongAreaVoltage))


def test_hourly_voltage_steps_round_trip_within_half_a_step() -> None:
    assert doctest.testmod(wrong_area).failed == 0
    pu = np.random.default_rng(3).normal(0.0, 0.03, 1000)
    back = wrong_area.decode_pu(wrong_area.encode_pu(pu))
    inside = np.abs(pu) <= 127 * wrong_area.PU_STEP
    assert np.abs(back - pu)[inside].max() <= wrong_area.PU_STEP / 2 + 1e-12
    assert np.array_equal(back[~inside], np.sign(pu[~inside]) * 127 * wrong_area.PU_STEP)


def test_without_a_directory_voltage_is_not_compared() -> None:
    feed = AreaFeed(make_archive(3), detectors=(WrongAreaVoltage(),))
    for k in range(1, 97 * 2):
        feed.push(T0 + k * 900, energy_kwh=0.1, voltage_a_v=[230.0, 229.0, 231.0])
    assert not feed.opened("wrong_area")


# -- state budget ------------------------------------------------------------------------------


def test_statistical_state_per_meter_is_small() -> None:
    feed = AreaFeed(make_archive(4))
    feed.push(T0 + 900, energy_kwh=0.1)
    per_meter = feed.state.bytes_per_meter()
    mine = {k: per_meter[k] for k in ("consumption", "interval_spike", "low_power_factor", "current_imbalance", "wrong_area")}
    assert mine == {"consumption": 290, "interval_spike": 37, "low_power_factor": 0, "current_imbalance": 8, "wrong_area": 53}
    assert sum(per_meter.values()) <= 1024


def test_day_view_type_is_what_the_pipeline_builds() -> None:
    """The synthetic DayView carries every field the pipeline's does (guards the helper against drift)."""
    area = SyntheticArea(n=2, seed=1)
    view = day_view(area.archive, 0, area.true(0), None)
    assert isinstance(view, DayView) and view.intervals_per_day == IPD and view.complete


@pytest.mark.parametrize("backed", [False, True])
def test_where_the_reading_carries_demand_the_demand_decides(backed: bool) -> None:
    """The current sample (one instant of a cycling load) says 1.0 kWh of the 2.0 reported, within the sample's
    tolerance either way; the interval's demand says 2.1 kWh (a real peak) or 0.3 (a value the load never had)."""
    feed = current_backed_feed(5, top_kwh=2.0, vi_kwh=1.0 if backed else 1.3, demand_kwh=2.1 if backed else 0.3)
    spikes = feed.opened("interval_spike")
    if backed:
        assert not spikes
    else:
        [alert] = spikes
        assert alert["evidence"]["demand_kwh"] == pytest.approx(0.3, rel=1e-3)


@pytest.mark.parametrize("refuted", [False, True])
def test_a_demand_far_below_the_energy_fires_without_the_peak_history(refuted: bool) -> None:
    """The meter peaks at 1.2 kWh every evening, so 2.0 kWh is not twice its history; its demand says 0.6 kWh
    (the load could not deliver 2.0: a spike) or 1.3 (not a match, but not twice short either: no alert)."""
    feed = current_backed_feed(7, top_kwh=2.0, vi_kwh=1.3, demand_kwh=0.6 if refuted else 1.3, usual_peak_kwh=1.2)
    spikes = feed.opened("interval_spike")
    if refuted:
        [alert] = spikes
        ev = alert["evidence"]
        assert ev["judged_by"] == "demand" and ev["highest_kwh"] < 2 * ev["peak_history_kwh"]
    else:
        assert not spikes


@pytest.mark.parametrize("days", [1, 2])
def test_a_swing_short_of_the_bar_each_day_fires_on_the_two_days_together(days: int) -> None:
    """× 1.9 is z 3.0 and 3.7 on the two days (σ ≈ 16 % with the prediction's share): one such day is no swing, two in
    a row are (z ≈ 4.7 together)."""
    area = SyntheticArea(n=30, seed=21)
    out, _ = run_days(FAMILY, area, START + 2, on_meter(2, START, lambda d, v: v * 1.9, until=START + days))
    swings = of(out, "consumption_swing", "M3")
    if days == 1:
        assert not swings
    else:
        [f] = swings
        ev = f.evidence
        assert ev["hours_judged"] == "yesterday and today" and ev["direction"] == "up"
        assert 4.5 <= ev["robust_z"] and ev["window_observed_kwh"] >= 1.5 * ev["window_usual_kwh"]
        assert f.ts == T0 + (START + 2) * DAY_S
