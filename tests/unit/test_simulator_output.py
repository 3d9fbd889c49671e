"""The simulator's published streams: determinism, coverage of the catalogue, contracts, summary counts.

Runs the must-show scenario (5 areas × 40 meters × 2 days, seed 7) to
files once per module and checks what a consumer of those files sees.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from amiwatch.settings import REPO_ROOT
from schemas import load, validator
from simulators.cli import register
from simulators.generate import Simulation
from simulators.messages import AreaDayMessages
from simulators.recount import bad_reading_keys, mismatches, recount
from simulators.scenario import scenario

MUST_SHOW = ["--areas", "5", "--meters-per-area", "40", "--days", "2", "--no-kafka", "--no-progress"]
ANOMALY_TYPES = set(load("common")["$defs"]["anomaly_type"]["enum"])
DEAD_LETTER_REASONS = set(load("common")["$defs"]["dead_letter_reason"]["enum"])
FAULT_TYPES = {"gap", "duplicate", "late_upload", "out_of_order", "register_reset", "unit_wh"}
VARIANTS = {
    "theft_suspected": {"bypass", "tamper", "h1", "h2", "h3", "h4", "h5", "h6"},
    "consumption_swing": {"up", "down"},
    "area_high_loss": {"tap", "thief"},
    "area_negative_loss": {"wrong_multiplier", "wrong_area"},
}


def main(argv: list[str]) -> int:
    """``amiwatch simulate`` without importing every other service's command."""
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def _simulate(out: Path, *extra: str, seed: int = 7) -> Path:
    args = ["simulate", *MUST_SHOW, "--seed", str(seed), "--out-dir", str(out), "--summary", str(out / "summary.json"),
            "--labels", str(out / "labels-copy.jsonl"), *extra]
    assert main(args) == 0
    return out


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _simulate(tmp_path_factory.mktemp("sim") / "a")


@pytest.fixture(scope="module")
def per_reading(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _simulate(tmp_path_factory.mktemp("sim") / "p", "--per-reading")


def _labels(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _lines(out / "labels.jsonl")]


def test_same_seed_same_bytes_and_another_seed_differs(run: Path, tmp_path: Path) -> None:
    # Another process with another string-hash seed: no set or dict order may leak into the output.
    again = tmp_path / "b"
    code = "import sys, pathlib; from tests.unit.test_simulator_output import _simulate; _simulate(pathlib.Path(sys.argv[1]))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(again)], env=env, cwd=REPO_ROOT, check=True, timeout=120)
    for name in ("raw.jsonl", "labels.jsonl", "archive.jsonl", "readings.csv", "events.csv"):
        assert (run / name).read_bytes() == (again / name).read_bytes(), name
    assert (run / "labels.jsonl").read_bytes() == (run / "labels-copy.jsonl").read_bytes()
    other = _simulate(tmp_path / "c", seed=8)
    assert (run / "raw.jsonl").read_bytes() != (other / "raw.jsonl").read_bytes()


def test_labels_cover_every_anomaly_type_variant_fault_and_malformed_reason(run: Path) -> None:
    labels = _labels(run)
    by_kind: dict[str, set[str]] = {}
    variants: dict[str, set[str]] = {}
    for label in labels:
        by_kind.setdefault(label["kind"], set()).add(label["type"])
        if label["variant"]:
            variants.setdefault(label["type"], set()).add(label["variant"])
    assert by_kind["anomaly"] == ANOMALY_TYPES
    assert by_kind["fault"] == FAULT_TYPES
    assert by_kind["malformed"] == DEAD_LETTER_REASONS
    for type_, expected in VARIANTS.items():
        assert expected <= variants[type_], type_
    assert {lab["subject_kind"] for lab in labels if lab["type"] == "missing_data"} == {"meter", "area"}
    assert len({lab["label_id"] for lab in labels}) == len(labels)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["plan_skipped"] == []


def test_labels_and_archives_follow_their_contracts(run: Path) -> None:
    for label in _labels(run):
        assert not list(validator("label").iter_errors(label)), label
    archives = [json.loads(line) for line in _lines(run / "archive.jsonl")]
    for record in archives:
        assert not list(validator("area_archive").iter_errors(record))
    assert [r["area_id"] for r in archives[:5]] == [f"A000{i}" for i in range(1, 6)]


def _shape(value: Any) -> Any:
    """The structure of a message (keys, nesting), without its values."""
    if isinstance(value, dict):
        return tuple(sorted((k, _shape(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(sorted({_shape(v) for v in value}))
    return type(value).__name__


class _Validator:
    """Full JSON Schema validation of every new message shape and a sample of the rest (jsonschema
    costs milliseconds a message), plus a cheap check of every reading's numbers."""

    def __init__(self) -> None:
        self.seen: set[Any] = set()
        self.count = 0

    def __call__(self, name: str, msg: dict[str, Any]) -> None:
        self.count += 1
        shape = (name, _shape(msg))
        if shape not in self.seen or self.count % 101 == 0:
            self.seen.add(shape)
            errors = [e.message for e in validator(name).iter_errors(msg)]
            assert not errors, (errors[:3], msg.get("area_id"), msg.get("ts"))
        for reading in msg.get("readings", [msg]):
            for field in ("energy", "register_fwd", "register_rev", "demand_kw"):
                assert reading.get(field, 0) >= 0, reading
            assert 0 <= reading.get("power_factor", 1) <= 1
            for phases in (reading.get("voltage", {}), reading.get("current", {})):
                assert all(v >= 0 for v in phases.values())


def _check_raw(out: Path) -> None:
    """Every message is valid but the labelled bad ones; the summary's counts are what the file holds."""
    labels = _labels(out)
    refs, pairs = bad_reading_keys(labels)
    summary = json.loads((out / "summary.json").read_text())
    raw_lines = _lines(out / "raw.jsonl")
    validate = _Validator()
    for line in raw_lines:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg["kind"] == "concentrator_upload":
            good = [r for r in msg["readings"] if r["meter_id"] not in refs and (r["meter_id"], msg["ts"]) not in pairs]
            validate("concentrator_upload", {**msg, "readings": good})
        elif msg["meter_id"] not in refs and (msg["meter_id"], msg.get("ts")) not in pairs:
            validate(msg["kind"], msg)
    counts = recount(raw_lines, labels)
    assert mismatches(summary, counts) == []
    bad = [lab["params"] for lab in labels if lab["kind"] == "malformed"]
    assert counts["refs_found"] == {p["message_ref"] for p in bad if p.get("meter_id", p["message_ref"]) == p["message_ref"]}
    dup = summary["duplicates"]
    repeats = dup["identical_readings"] + dup["conflicting"]
    assert summary["reading_items"] == summary["readings"] + repeats + summary["malformed"]["items"]
    assert summary["readings"] == summary["expected_readings"] - summary["not_delivered"]["total"]
    assert summary["malformed"]["by_reason"] == dict(Counter(lab["type"] for lab in labels if lab["kind"] == "malformed"))
    by_type = Counter(lab["type"] for lab in labels if lab["kind"] == "fault")
    assert summary["not_delivered"]["gap"] == by_type["gap"]
    assert summary["register_resets"] == by_type["register_reset"]
    assert summary["archives"] == summary["areas"] + by_type["register_reset"]


def test_uploads_validate_and_summary_matches_the_raw_file(run: Path) -> None:
    _check_raw(run)


def test_per_reading_shape_validates_and_summary_matches(per_reading: Path) -> None:
    _check_raw(per_reading)
    summary = json.loads((per_reading / "summary.json").read_text())
    assert summary["messages"]["by_kind"].get("concentrator_upload", 0) == 0


def test_refs_are_written_into_the_bad_messages(run: Path) -> None:
    raw = (run / "raw.jsonl").read_bytes()
    for label in _labels(run):
        if label["kind"] == "malformed" and label["type"] in {"not_json", "schema", "unknown_meter", "unknown_area"}:
            assert label["params"]["message_ref"].encode() in raw, label
    assert b"NaN" in raw


def test_meter_replacement_republishes_the_archive_and_restarts_the_register(run: Path) -> None:
    reset = next(lab for lab in _labels(run) if lab["type"] == "register_reset")
    archives = [json.loads(line) for line in _lines(run / "archive.jsonl")]
    later = [a for a in archives[5:] if a["area_id"] == reset["area_id"]]
    meter = next(m for m in later[0]["meters"] if m["meter_id"] == reset["subject_id"])
    assert meter["installed_at"] == reset["params"]["installed_at"]
    for line in _lines(run / "raw.jsonl"):
        if reset["start"].encode() in line and reset["subject_id"].encode() in line:
            msg = json.loads(line)
            item = next(r for r in msg["readings"] if r["meter_id"] == reset["subject_id"])
            assert item["events"][0]["code"] == "meter_replaced"
            assert item["register_fwd"] < reset["params"]["register_start_kwh"] + 5
            break
    else:
        pytest.fail("the replaced meter's reading is not in the raw stream")


def test_messages_carry_the_generated_values() -> None:
    sim = Simulation(scenario("demo", seed=3))
    day = next(sim.days())[1]
    msgs = AreaDayMessages(day)
    meters = list(range(day.fleet.size))
    for k in (0, 50, 95):
        for m, text in zip(meters, msgs.item_texts(k, meters), strict=True):
            item = json.loads(text)
            assert item["energy"] == day.energy_units[m, k] / 1e4
            assert item["register_fwd"] == day.reg_fwd_units[m, k] / 1e4
            for p, phase in enumerate("abc"):
                if phase in item["voltage"]:
                    assert item["voltage"][phase] == round(day.voltage[m, k, p], 1)
                    assert item["current"][phase] == round(day.current[m, k, p], 3)
            assert set(item["voltage"]) == ({"a"} if day.fleet.phases[m] == 1 else {"a", "b", "c"})
