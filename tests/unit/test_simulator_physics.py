"""The simulator's ground truth is physically exact: balances, thefts, attacks, registers, electrical values."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from simulators.anomalies import Injection
from simulators.areaday import AreaDay
from simulators.fleet import build_fleet
from simulators.generate import Simulation
from simulators.plan import Plan
from simulators.scenario import FaultRates, Scenario, scenario
from simulators.timegrid import TimeGrid

QUIET = FaultRates(gap=0, duplicate=0, late_upload=0, out_of_order=0, unit_wh=0, register_reset=0, malformed=0, clock_noise=0)
PPD = 96


def quiet(**overrides: object) -> Scenario:
    """Two areas, three days, no anomaly and no fault unless a test plans one."""
    base = Scenario(name="test", areas=2, meters_per_area=30, days=3, seed=11, anomaly_rate=0.0,
                    area_anomalies=False, faults=QUIET)
    return base.with_overrides(**overrides)


def run_days(sim: Simulation) -> list[list[AreaDay]]:
    return list(sim.days())


@cache
def baseline() -> list[list[AreaDay]]:
    return run_days(Simulation(quiet()))


def with_injection(inj: Injection) -> list[list[AreaDay]]:
    return run_days(Simulation(quiet(), plan=Plan(injections=[inj], anomalous={(inj.area, inj.meter)})))


def household(day: AreaDay) -> int:
    """An active single-phase household without PV that uses something."""
    f = day.fleet
    ok = (f.phases == 1) & ~f.has_generation & np.array([s == "active" for s in f.status]) & (f.multiplier == 1)
    return int(np.flatnonzero(ok)[np.argmax(f.level_kw[ok])])


def daily_loss_rate(day: AreaDay) -> float:
    supply = day.area_energy_units.sum()
    metered = day.energy_units.sum() - (day.reg_rev_units[:, -1] - day.reg_rev_units[:, 0]).sum()
    return float((supply - metered) / supply)


def test_healthy_area_meter_is_customers_times_one_plus_technical_loss() -> None:
    for areas in baseline():
        for day in areas:
            flow = (day.imp - day.exp).sum(axis=0)
            assert np.allclose(day.area_kwh, np.maximum(flow * (1.0 + day.loss_rate), 0.0))
            assert 0.01 < daily_loss_rate(day) < 0.08
            assert 0.02 <= day.fleet.loss_rate <= 0.06


def test_bypass_raises_the_area_loss_by_exactly_the_stolen_energy() -> None:
    m = household(baseline()[0][0])
    theft = with_injection(Injection("theft_suspected", "bypass", "meter", 0, m, PPD + 10, None, {"alpha": 0.3}))
    for base_areas, theft_areas in zip(baseline(), theft, strict=True):
        base, stolen_day = base_areas[0], theft_areas[0]
        assert np.array_equal(base.area_energy_units, stolen_day.area_energy_units)  # the wire does not change
        loss_rise = (base.energy_units.sum(axis=0) - stolen_day.energy_units.sum(axis=0)) / 1e4
        stolen = stolen_day.imp[m] - stolen_day.reported[m]
        assert np.allclose(loss_rise, stolen, atol=2e-4)
    assert stolen.sum() > 1.0
    first = theft[1][0]
    assert np.allclose(first.reported[m, 10:], 0.3 * first.imp[m, 10:]) and np.allclose(first.reported[m, :10], first.imp[m, :10])


def test_h5_flattens_the_day_and_keeps_its_total() -> None:
    m = household(baseline()[0][0])
    day = with_injection(Injection("theft_suspected", "h5", "meter", 0, m, PPD, None))[1][0]
    assert np.isclose(day.reported[m].sum(), day.meas_fwd[m].sum())
    assert np.allclose(day.reported[m], day.reported[m, 0])
    assert abs(int(day.energy_units[m].sum()) - round(day.meas_fwd[m].sum() * 1e4)) <= PPD


def test_h6_reverses_the_day() -> None:
    m = household(baseline()[0][0])
    day = with_injection(Injection("theft_suspected", "h6", "meter", 0, m, PPD, None))[1][0]
    assert np.allclose(day.reported[m], day.meas_fwd[m, ::-1])
    assert np.isclose(day.reported[m].sum(), day.meas_fwd[m].sum())


def test_wrong_area_moves_the_energy_and_the_voltage_to_the_feeding_area() -> None:
    f = baseline()[0][0].fleet
    m = int(np.argmax(f.level_kw[1:])) + 1
    days = with_injection(Injection("wrong_area", None, "meter", 0, m, PPD, None, partner=1))
    a, b = days[1]
    base_a, base_b = baseline()[1]
    moved = a.imp[m] - a.exp[m]
    assert np.allclose(base_a.area_kwh - a.area_kwh, moved * (1 + base_a.loss_rate), rtol=0.05, atol=1e-3)
    assert (b.area_kwh > base_b.area_kwh).all()
    # Its voltage now follows the other transformer's busbar (per phase, before the feeder drop).
    ratio_b = b.area_voltage[:, 0] / b.area_voltage[:, 0].mean()
    ratio_m = a.voltage[m, :, 0] / a.voltage[m, :, 0].mean()
    assert np.corrcoef(ratio_b, ratio_m)[0, 1] > np.corrcoef(a.area_voltage[:, 0], ratio_m)[0, 1]


@cache
def demo() -> tuple[Simulation, list[list[AreaDay]]]:
    sim = Simulation(scenario("demo", seed=7))
    return sim, run_days(sim)


def test_registers_only_go_back_where_a_decrease_or_replacement_was_injected() -> None:
    sim, days = demo()
    allowed = {(i.area, i.meter, i.start) for i in sim.plan.injections if i.type == "register_decrease"}
    allowed |= {(a, m, g) for (a, g), resets in sim.faults.resets.items() for m, _u, _i in resets}
    assert allowed
    seen = set()
    for a in range(len(sim.fleets)):
        reg = np.concatenate([d[a].reg_fwd_units for d in days], axis=1)
        prev = np.concatenate([sim.fleets[a].register_init[:, None], reg[:, :-1]], axis=1)
        for m, g in zip(*np.nonzero(reg < prev), strict=True):
            seen.add((a, int(m), int(g)))
        assert (np.concatenate([d[a].reg_rev_units for d in days], axis=1)[:, 1:] >= 0).all()
    decreases = {x for x in allowed if x in {(i.area, i.meter, i.start) for i in sim.plan.injections}}
    assert decreases <= seen <= allowed


def test_energy_is_register_difference_times_multiplier_except_for_a_mismatch() -> None:
    sim, days = demo()
    mismatch = {(i.area, i.meter) for i in sim.plan.injections if i.type == "multiplier_mismatch"}
    jumps = {(i.area, i.meter) for i in sim.plan.injections if i.type == "register_decrease"}
    jumps |= {(a, m) for (a, _g), resets in sim.faults.resets.items() for m, _u, _i in resets}
    for a, f in enumerate(sim.fleets):
        reg = np.concatenate([d[a].reg_fwd_units for d in days], axis=1)
        energy = np.concatenate([d[a].energy_units for d in days], axis=1)
        diff = np.diff(reg, axis=1) * f.multiplier[:, None]
        for m in range(f.size):
            if (a, m) in mismatch:
                assert not np.array_equal(diff[m][-10:], energy[m, 1:][-10:])
            elif (a, m) not in jumps:
                assert np.array_equal(diff[m], energy[m, 1:]), f.meter_ids[m]


def test_area_labels_tell_the_truth_about_the_loss() -> None:
    sim, days = demo()
    last = days[-1]
    checked = 0
    for inj in sim.plan.injections:
        if inj.subject_kind != "area" or inj.type not in {"area_high_loss", "area_negative_loss"}:
            continue
        day = last[inj.area]
        rate = daily_loss_rate(day) * 100
        if inj.type == "area_high_loss":
            assert rate > day.fleet.loss_limit_pct, (inj.variant, rate)
        else:
            assert rate < -1.0, (inj.variant, rate)
        checked += 1
    assert checked >= 4


def test_currents_and_voltages_are_consistent_with_the_energy() -> None:
    """Currents are samples of the load: each interval's V·I·pf scatters around its mean power, the day's sums agree."""
    for day in baseline()[0]:
        f = day.fleet
        one = np.flatnonzero((f.phases == 1) & ~f.has_generation & np.array([s == "active" for s in f.status]))
        power_kw = day.imp[one] / day.dt_h
        from_iv = day.voltage[one, :, 0] * day.current[one, :, 0] * day.pf[one] * f.multiplier[one, None] / 1000.0
        used = power_kw > 0
        log = np.log(from_iv[used] / power_kw[used])
        assert 0.1 < log.std() < 0.4 and abs(np.median(log)) < 0.1
        busy = power_kw.sum(axis=1) * day.dt_h >= 2.0
        assert np.allclose(from_iv[busy].sum(axis=1), power_kw[busy].sum(axis=1), rtol=0.2)
        v = day.voltage[:, :, 0]
        assert (v > 0.9 * 220).all() and (v < 1.1 * 220).all()
        assert (day.demand >= day.imp / day.dt_h - 1e-9).all()


def test_healthy_three_phase_customers_are_near_balanced() -> None:
    """A healthy three-phase split stays well inside the 30 % imbalance rule (the anomaly is what crosses it)."""
    grid = TimeGrid(quiet().start, 1, 15)
    shares = np.vstack([f.phase_share[f.phases == 3] for f in build_fleet(3, 40, 100, grid)])
    assert len(shares) > 200 and np.allclose(shares.sum(axis=1), 1.0)
    imbalance = (shares.max(axis=1) - shares.min(axis=1)) / shares.max(axis=1)
    assert imbalance.max() < 0.30 and np.quantile(imbalance, 0.9) < 0.2 and imbalance.mean() > 0.03
    for day in baseline()[0]:  # and the currents the meters display follow that split
        three = np.flatnonzero((day.fleet.phases == 3) & (day.imp.sum(axis=1) > 0))
        cur = day.current[three]
        loaded = cur.max(axis=2) > 0
        spread = (cur.max(axis=2) - cur.min(axis=2))[loaded] / cur.max(axis=2)[loaded]
        assert spread.max() < 0.30


def test_adding_areas_leaves_existing_areas_unchanged() -> None:
    grid = TimeGrid(quiet().start, 1, 15)
    two, three = build_fleet(5, 2, 30, grid), build_fleet(5, 3, 30, grid)
    assert [f.archive_record("t") for f in two] == [f.archive_record("t") for f in three[:2]]
    small = run_days(Simulation(quiet(areas=2, days=1)))[0]
    large = run_days(Simulation(quiet(areas=3, days=1)))[0]
    for a in range(2):
        assert np.array_equal(small[a].energy_units, large[a].energy_units)


@pytest.mark.parametrize("interval", [30, 60])
def test_other_intervals(interval: int) -> None:
    days = run_days(Simulation(quiet(interval_minutes=interval, days=1)))
    assert days[0][0].energy_units.shape[1] == 1440 // interval
    assert 0.01 < daily_loss_rate(days[0][0]) < 0.08
