"""The fault control run: the same scenario without data faults tells the alerts faults caused from the rest."""

from __future__ import annotations

import numpy as np

from services.detector.evaluate.control import control_run, without_faults
from services.detector.evaluate.metrics import FaultCheck
from services.detector.offline import OfflineRunner, fold_alerts
from services.detector.thresholds import load_thresholds
from simulators.generate import Simulation
from simulators.scenario import scenario

DEMO = scenario("demo", areas=2, meters_per_area=20, days=2, seed=3)


def test_without_faults_keeps_anomalies_and_physics_and_drops_every_fault() -> None:
    faulty, clean = Simulation(DEMO), Simulation(without_faults(DEMO))
    assert any(label["kind"] == "fault" for label in faulty.labels)
    assert not any(label["kind"] in ("fault", "malformed") for label in clean.labels)
    assert [lb for lb in faulty.labels if lb["kind"] == "anomaly"] == [lb for lb in clean.labels if lb["kind"] == "anomaly"]
    for day_faulty, day_clean in zip(faulty.days(), clean.days(), strict=True):
        for a, b in zip(day_faulty, day_clean, strict=True):
            np.testing.assert_array_equal(a.meas_fwd, b.meas_fwd)
            np.testing.assert_array_equal(a.voltage, b.voltage)


def _suspect(alert: dict, **change: str) -> dict:
    keys = ("alert_id", "type", "subject_kind", "subject_id", "area_id", "first_seen", "last_seen")
    return {**{k: alert[k] for k in keys}, "faults_near": [], **change}


def test_the_control_run_counts_as_caused_only_the_alerts_it_does_not_raise_again() -> None:
    runner = OfflineRunner(load_thresholds(None))
    Simulation(without_faults(DEMO)).run(runner)
    raised = fold_alerts(runner.finish().records)
    assert raised
    kept = _suspect(raised[0])
    subjects = {(a["type"], a["subject_id"]) for a in raised}
    meter = next(f"M{kept['area_id'][1:]}-{i:04d}" for i in range(20) if ("theft_suspected", f"M{kept['area_id'][1:]}-{i:04d}") not in subjects)
    caused = _suspect(raised[0], type="theft_suspected", subject_kind="meter", subject_id=meter)
    check = FaultCheck(alerts=2, suspects=[kept, caused])
    control_run(check, DEMO)
    assert check.control_areas == [kept["area_id"]]
    assert [s["in_control"] for s in check.suspects] == [True, False]
    assert check.caused == 1
    assert check.misses == ["1 theft/swing/loss alert(s) caused by data faults (absent from the control run without them)"]


def test_suspects_no_control_run_has_judged_miss_the_target() -> None:
    assert FaultCheck(alerts=1).misses == ["1 false theft/swing/loss alert(s) on subjects only data faults touch, no control run"]
    assert FaultCheck(alerts=1, caused=0).misses == []
