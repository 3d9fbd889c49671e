"""``amiwatch evaluate`` offline, end to end, on the demo scenario (the whole catalogue in two days)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from amiwatch.cli import main
from services.detector.evaluate.metrics import CATALOGUE
from services.detector.evaluate.run import evaluate
from simulators.generate import Simulation
from simulators.scenario import scenario


def test_offline_evaluate_runs_end_to_end_and_reports_every_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--scenario", "demo", "--seed", "1", "--json", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    result = orjson.loads(out.read_bytes())
    labels = Simulation(scenario("demo", seed=1)).labels
    labelled = {label["type"] for label in labels if label["kind"] == "anomaly"}
    names = [row["name"] for row in result["rows"]]
    assert [n for n in names if "/" not in n] == [*CATALOGUE, "overall"]
    assert labelled == set(CATALOGUE)  # the demo scenario labels the whole catalogue...
    for type_ in labelled:  # ...and the table shows each of them
        assert type_ in printed
    variants = {f"{label['type']}/{label['variant']}" for label in labels if label["kind"] == "anomaly" and label["variant"]}
    assert variants <= set(names)
    overall = result["rows"][-1]
    anomalies = sum(1 for label in labels if label["kind"] == "anomaly")
    assert overall["labels"] == anomalies
    assert overall["tp"] + overall["explained"] + overall["fp"] == overall["alerts"] == len(result["alerts"])
    assert overall["detected"] + overall["fn"] == anomalies
    assert all(c["expected"] == c["got"] for c in result["dead_letters"].values())
    assert set(result["dead_letters"]) == {label["type"] for label in labels if label["kind"] == "malformed"}
    assert result["source"] == "offline" and result["run"]["meters"] == 200 and result["run"]["days"] == 2
    assert "targets missed" in printed or "every target met" in printed


def test_workers_split_the_areas_without_changing_the_result() -> None:
    tiny = scenario("demo", areas=3, meters_per_area=12, days=2, seed=2)
    one, three = evaluate(tiny, workers=1), evaluate(tiny, workers=3)
    assert sorted(a["alert_id"] for a in one.alerts) == sorted(a["alert_id"] for a in three.alerts)
    assert one.alerts and [r.to_json() for r in one.rows] == [r.to_json() for r in three.rows]
    assert one.dead_letters == three.dead_letters
