"""Choosing which anomalies a run plans: ``Scenario.anomalies``, ``amiwatch simulate --anomalies``, the ``bypass`` preset.

Without a choice the plan is the whole catalogue, byte for byte what it was
(the choice draws nothing from the planner's random stream for kinds it
leaves out, and leaves everything alone when there is none).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from simulators.generate import Simulation
from simulators.scenario import AREA_ANOMALY_WEIGHTS, METER_ANOMALY_WEIGHTS, anomaly_keys, scenario
from tests.unit.test_simulator_output import main


def _kinds(sim: Simulation) -> set[tuple[str, str | None]]:
    return {(lb["type"], lb["variant"]) for lb in sim.labels if lb["kind"] == "anomaly"}


def test_anomaly_keys_parse_and_refuse() -> None:
    assert anomaly_keys("area_high_loss/thief, clock_skew") == frozenset({("area_high_loss", "thief"), ("clock_skew", None)})
    assert anomaly_keys("all") is None
    assert anomaly_keys("theft_suspected/h5") == frozenset({("theft_suspected", "h5")})
    every = ",".join(t if v is None else f"{t}/{v}" for t, v in {*METER_ANOMALY_WEIGHTS, *AREA_ANOMALY_WEIGHTS})
    assert anomaly_keys(every) == frozenset({*METER_ANOMALY_WEIGHTS, *AREA_ANOMALY_WEIGHTS})
    for bad in ("theft_suspected", "theft_suspected/h9", "clock_skew/x", "", " , "):
        with pytest.raises(ValueError):
            anomaly_keys(bad)


def test_no_choice_is_the_whole_catalogue_and_a_choice_plans_only_its_kinds() -> None:
    base = scenario("demo", areas=3, meters_per_area=20, days=2, seed=4)
    everything = Simulation(base)
    assert Simulation(replace(base, anomalies=None)).labels == everything.labels
    assert len(_kinds(everything)) > 20

    chosen = frozenset({("clock_skew", None), ("theft_suspected", "h5")})
    some = Simulation(replace(base, anomalies=chosen))
    assert _kinds(some) == chosen
    # The catalogue's count of each chosen kind (the rates do not change with the choice).
    counts = {k: sum((lb["type"], lb["variant"]) == k for lb in everything.labels) for k in chosen}
    assert {k: sum((lb["type"], lb["variant"]) == k for lb in some.labels) for k in chosen} == counts

    thief = Simulation(replace(base, anomalies=frozenset({("area_high_loss", "thief")})))
    assert _kinds(thief) == {("area_high_loss", "thief"), ("theft_suspected", "bypass")}


def test_bypass_preset_is_one_thief_after_two_weeks_and_no_faults() -> None:
    sim = Simulation(scenario("bypass"))
    s = sim.scenario
    assert (s.areas, s.meters_per_area, s.days, s.interval_minutes) == (1, 20, 18, 15)
    labels = sim.labels
    assert [lb["kind"] for lb in labels] == ["anomaly", "anomaly"]  # no fault, no malformed message
    theft = next(lb for lb in labels if lb["type"] == "theft_suspected")
    area = next(lb for lb in labels if lb["type"] == "area_high_loss")
    assert theft["variant"] == "bypass" and area["variant"] == "thief"
    assert area["params"]["thief_meter_id"] == theft["subject_id"] and area["start"] == theft["start"]
    # Fourteen complete days of history before it (the consumption rules' min_history_days).
    assert theft["start"] >= "2026-01-19T00:00:00Z" and theft["end"] is None


def test_cli_anomalies_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def labels(out: Path, *extra: str) -> list[dict]:
        assert main(["simulate", "--areas", "2", "--meters-per-area", "15", "--days", "2", "--seed", "3", "--no-kafka",
                     "--no-progress", "--out-dir", str(out), *extra]) == 0  # fmt: skip
        return [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]

    only = labels(tmp_path / "only", "--anomalies", "clock_skew")
    assert {(lb["type"], lb["variant"]) for lb in only if lb["kind"] == "anomaly"} == {("clock_skew", None)}
    assert any(lb["kind"] != "anomaly" for lb in only)  # the demo preset's faults are still there
    assert labels(tmp_path / "all", "--anomalies", "all") == labels(tmp_path / "default")
    bypass_all = labels(tmp_path / "bypass-all", "--scenario", "bypass", "--anomalies", "all")
    assert len({(lb["type"], lb["variant"]) for lb in bypass_all}) > 10  # the preset's choice undone
    with pytest.raises(SystemExit):
        main(["simulate", "--no-kafka", "--anomalies", "theft_suspected/h9"])
    assert "unknown anomaly kind 'theft_suspected/h9'" in capsys.readouterr().err
