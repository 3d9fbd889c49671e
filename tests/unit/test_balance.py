"""Area energy balance (services/detector/balance) and the area_loss rule on synthetic areas.

Areas come from ``tests/unit/synthetic_area.py``: realistic household
noise, an area meter that sees true consumption plus a load-dependent
technical loss of about 4–5 %.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from services.detector.archive import AreaArchive
from services.detector.balance import NO_METERED_CUSTOMER, TOO_EARLY, DayBalance, LossLimits, day_balance
from services.detector.day import DayView
from services.detector.detectors import DETECTORS
from services.detector.detectors.consumption import ConsumptionFamily
from services.detector.findings import Finding
from tests.unit.detector_frames import make_archive, meter
from tests.unit.synthetic_area import SyntheticArea, day_view, run_days

FAMILY = next(d for d in DETECTORS if isinstance(d, ConsumptionFamily))
LIMITS = LossLimits(high=0.10, negative=-0.01, min_coverage=0.95, min_meter_share=0.9)
AREA_TYPES = ("area_high_loss", "area_negative_loss", "area_loss_uncomputable")


def balance(
    view: DayView,
    archive: AreaArchive,
    expected: np.ndarray,
    reverse: np.ndarray | None = None,
    export: np.ndarray | None = None,
) -> DayBalance:
    """``day_balance`` with the default limits and no reverse energy unless given."""
    n, ipd = view.energy.shape
    reverse = np.zeros(n) if reverse is None else reverse
    export = np.zeros(ipd) if export is None else export
    return day_balance(view, archive, expected, reverse, export, LIMITS)


def of(out: list[list[Finding]], type_: str) -> list[Finding]:
    return [f for day in out for f in day if f.type == type_]


def counts(out: list[list[Finding]]) -> Counter[tuple[str, str]]:
    return Counter((f.type, f.subject_id) for day in out for f in day)


# -- one day's balance ---------------------------------------------------------------------


def test_day_balance_arithmetic_and_classes() -> None:
    archive = make_archive(3)
    energy = np.full((3, 96), 0.1)
    area = np.full(96, 0.33)  # supplied 31.68, consumed 28.8: 9.09 % loss
    b = balance(day_view(archive, 0, energy, area), archive, np.full(3, np.nan))
    assert b.status == "compliant" and b.coverage == 1.0 and b.imputed_kwh == 0.0
    assert b.supplied_kwh == pytest.approx(31.68) and b.consumed_kwh == pytest.approx(28.8)
    assert b.loss_rate == pytest.approx(2.88 / 31.68) and b.hourly_rate == pytest.approx(np.full(24, 2.88 / 31.68))
    assert balance(day_view(archive, 0, energy, area * 1.2), archive, np.full(3, np.nan)).status == "high"
    assert balance(day_view(archive, 0, energy, area * 0.9), archive, np.full(3, np.nan)).status == "negative"


def test_uncomputable_days_say_why() -> None:
    archive = make_archive(20)
    energy = np.full((20, 96), 0.1)
    area = np.full(96, 2.1)
    no_area = balance(day_view(archive, 0, energy, None), archive, np.full(20, np.nan))
    assert (no_area.status, no_area.reason) == ("uncomputable", "area_meter")
    energy[:2] = np.nan  # 18 of 20 = 90 % reported
    low = balance(day_view(archive, 0, energy, area), archive, np.full(20, np.nan))
    assert (low.status, low.reason, low.coverage) == ("uncomputable", "coverage", 0.9)
    assert np.isnan(low.loss_rate)


def test_missing_meters_are_imputed_not_counted_as_loss() -> None:
    area = SyntheticArea(n=40, seed=3)
    true = area.true(0)
    supplied = area.area(true)
    truth = balance(day_view(area.archive, 0, true, supplied), area.archive, area.level)
    gappy = true.copy()
    gappy[7] = np.nan  # one meter silent all day (97.5 % coverage)
    gappy[8, 40:44] = np.nan  # another misses an hour
    b = balance(day_view(area.archive, 0, gappy, supplied), area.archive, area.level)
    assert b.coverage == pytest.approx(39 / 40) and b.status == "compliant"
    assert b.imputed_kwh > 0.5 * area.level[7]
    assert b.loss_rate == pytest.approx(truth.loss_rate, abs=0.01)


def test_a_concentrator_outage_shortens_the_window_instead_of_inventing_loss() -> None:
    area = SyntheticArea(n=40, seed=4)
    true = area.true(0)
    supplied = area.area(true)
    truth = balance(day_view(area.archive, 0, true, supplied), area.archive, area.level)
    cut_true, cut_area = true.copy(), supplied.copy()
    cut_true[:, 8:16] = np.nan  # 02:00-04:00: no meter and no area meter reading
    cut_area[8:16] = np.nan
    b = balance(day_view(area.archive, 0, cut_true, cut_area), area.archive, area.level)
    assert b.status == "compliant" and b.window_intervals == 88 and b.coverage == 1.0 and b.imputed_kwh == 0.0
    assert b.loss_rate == pytest.approx(truth.loss_rate, abs=0.005)
    assert np.isnan(b.hourly_rate[2:4]).all() and not np.isnan(b.hourly_rate[4:]).any()
    cut_area[16:24] = np.nan  # 4 hours without the area meter: below min_meter_share of the day
    assert balance(day_view(area.archive, 0, cut_true, cut_area), area.archive, area.level).reason == "area_meter"


def test_inactive_meter_without_readings_consumes_nothing() -> None:
    archive = make_archive([meter("M1"), meter("M2", status="closed")])
    energy = np.array([np.full(96, 0.1), np.full(96, np.nan)])
    b = balance(day_view(archive, 0, energy, np.full(96, 0.105)), archive, np.array([9.6, 5.0]))
    assert b.active_meters == 1 and b.coverage == 1.0 and b.imputed_kwh == 0.0


def test_generation_export_is_supply_and_reversed_wiring_is_consumption() -> None:
    archive = make_archive([meter("PV", has_generation=True), meter("HOME"), meter("BACKWARDS")])
    noon = np.zeros(96)
    noon[40:56] = 0.5  # PV exports 8 kWh around noon (its forward register shows only import)
    energy = np.array([np.full(96, 0.05), np.full(96, 0.1), np.zeros(96)])  # BACKWARDS consumes 9.6 kWh on its reverse register
    wire = energy.sum(axis=0) - noon + 0.1  # the area meter sees the net flow (BACKWARDS' real use included)
    area = wire * 1.04
    reverse = np.array([noon.sum(), 0.0, 9.6])
    b = balance(day_view(archive, 0, energy, area), archive, np.full(3, np.nan), reverse, noon)
    assert b.supplied_kwh == pytest.approx(area.sum() + 8.0) and b.consumed_kwh == pytest.approx(4.8 + 9.6 + 9.6)
    assert b.status == "compliant" and 0.0 < b.loss_rate < 0.06
    naive = balance(day_view(archive, 0, energy, area), archive, np.full(3, np.nan))
    assert naive.status == "high"  # without the reverse registers the same day looks like loss


# -- the area_loss rule over weeks ------------------------------------------------------------


def test_healthy_area_with_technical_loss_stays_compliant() -> None:
    area = SyntheticArea(n=40, seed=1)
    out, state = run_days(FAMILY, area, 60)
    rates = state["area_loss_rate"][0]
    assert ((rates > 0.02) & (rates < 0.06)).all()
    assert not [f for day in out for f in day if f.type in AREA_TYPES or f.type in ("theft_suspected", "wrong_area")]


def test_bypass_thief_in_a_high_loss_area_ranks_first() -> None:
    area = SyntheticArea(n=40, seed=5)
    area.level[3] = 35.0  # a large customer bypasses 70 % of its load from day 35

    def bypass(d: int, x: np.ndarray) -> np.ndarray:
        if d >= 35:
            x[3] *= 0.3
        return x

    out, _ = run_days(FAMILY, area, 45, bypass)
    high = of(out, "area_high_loss")
    assert high and all(f.subject_kind == "area" and f.subject_id == "A1" for f in high)
    first, last = high[0].evidence, high[-1].evidence
    assert first["loss_rate_pct"] > 10.0 and first["limit_pct"] == 10.0 and first["coverage_pct"] == 100.0
    assert first["trailing_loss_pct"][-2] < 6.0 < 10.0 < first["trailing_loss_pct"][-1]
    assert first["attribution"]["candidates"] or first["attribution"]["conclusion"] == TOO_EARLY
    attribution = last["attribution"]
    assert attribution["candidates"][0]["meter_id"] == "M4"
    assert attribution["candidates"][0]["log_likelihood_ratio"] > 3.0 and 0.5 < attribution["explained_share"] < 1.5
    assert attribution["conclusion"].startswith("1 metered customer")
    assert counts(out)[("theft_suspected", "M4")] > 0


def test_a_theft_that_outlasts_the_trailing_window_still_ranks_its_thief_first() -> None:
    """After six weeks the trailing 28 days hold only theft days; each drop is judged against its own onset."""
    area = SyntheticArea(n=40, seed=5)
    area.level[3] = 35.0

    def bypass(d: int, x: np.ndarray) -> np.ndarray:
        if d >= 35:
            x[3] *= 0.3
        return x

    out, _ = run_days(FAMILY, area, 35 + 42, bypass)
    last = of(out, "area_high_loss")[-1].evidence["attribution"]
    assert [c["meter_id"] for c in last["candidates"]] == ["M4"]
    assert last["candidates"][0]["days_since_drop"] == 42
    theft_days = {f.ts for day in out for f in day if f.type == "theft_suspected" and f.subject_id == "M4"}
    assert len(theft_days) >= 35  # the case stays open: the level is not relearnt while the loss confirms the drop


def test_a_genuine_drop_in_a_high_loss_area_is_not_its_author() -> None:
    """A tap raises the loss; a household that shrank at the same time is neither a candidate nor a thief."""
    area = SyntheticArea(n=40, seed=6)
    tap = 40.0 * area.weekday_shape.mean(axis=0)
    area.level[7] = 25.0

    def shrink(d: int, x: np.ndarray) -> np.ndarray:
        if d >= 35:
            x[7] *= 0.4
        return x

    out, _ = run_days(FAMILY, area, 45, consume=shrink, extra=lambda d: tap if d >= 35 else 0.0)
    last = of(out, "area_high_loss")[-1].evidence["attribution"]
    assert last["candidates"] == [] and last["conclusion"] == NO_METERED_CUSTOMER
    assert counts(out)[("sustained_drop", "M8")] > 0 and not of(out, "theft_suspected")


def test_unmetered_tap_is_explained_by_no_metered_customer() -> None:
    area = SyntheticArea(n=40, seed=6)
    tap = 40.0 * area.weekday_shape.mean(axis=0)  # 40 kWh/day taken before the meters
    out, _ = run_days(FAMILY, area, 45, extra=lambda d: tap if d >= 35 else 0.0)
    high = of(out, "area_high_loss")
    assert len(high) == 10
    last = high[-1].evidence["attribution"]
    assert last["candidates"] == [] and last["conclusion"] == NO_METERED_CUSTOMER
    assert last["loss_rise_kwh_day"] == pytest.approx(40.0, rel=0.25)
    assert not of(out, "theft_suspected") and not of(out, "sustained_drop")


def test_meter_fed_by_another_area_makes_negative_loss_and_is_named() -> None:
    area = SyntheticArea(n=40, seed=8)
    area.level[5] = 35.0
    supplied_by_us = area.area

    def area_meter(consumed: np.ndarray, extra: np.ndarray | float = 0.0) -> np.ndarray:
        others = consumed.copy()
        others[5] = 0.0  # M6 is archived here but fed by a neighbouring transformer
        return supplied_by_us(others, extra)

    area.area = area_meter  # type: ignore[method-assign]
    out, _ = run_days(FAMILY, area, 30)
    negative = of(out, "area_negative_loss")
    assert len(negative) == 30
    ev = negative[-1].evidence
    assert ev["loss_rate_pct"] < -1.0 and ev["wrong_area_suspects"][0]["meter_id"] == "M6"
    assert 0.0 < ev["wrong_area_suspects"][0]["loss_pct_without_meter"] < 10.0
    wrong = of(out, "wrong_area")
    assert wrong and {f.subject_id for f in wrong} == {"M6"}
    assert wrong[-1].evidence["signal"] == "negative_loss" and wrong[-1].evidence["r"] >= 0.7


def test_area_without_area_meter_raises_nothing() -> None:
    area = SyntheticArea(n=10, seed=9)
    area.archive = make_archive([meter(f"M{i + 1}") for i in range(10)], area_meter=None)
    out, _ = run_days(FAMILY, area, 3)
    assert not [f for day in out for f in day if f.type in AREA_TYPES]
