"""The fault control run: which alerts on subjects only data faults touched did the faults cause?

Data faults (gaps, duplicates, late and out-of-order uploads, Wh units,
register resets, malformed messages) touch most meters of a run somewhere,
so a false alert on such a subject says nothing by itself about the faults:
most are the noise every meter has. The simulator draws its faults from a
random stream of their own, so the same scenario with every fault rate 0
has the same loads, anomalies and noise, only no faults. An alert the faults
caused is one that this control run does not raise. Only the areas of the
alerts in question are judged again (areas share no state the theft, swing
and loss rules read).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from services.detector.evaluate.matching import Alert
from services.detector.evaluate.metrics import FaultCheck
from services.detector.eventtime import parse_ts
from services.detector.offline import OfflineRunner, fold_alerts
from services.detector.thresholds import load_thresholds
from simulators.generate import Simulation
from simulators.scenario import FaultRates, Scenario

__all__ = ["SLACK_S", "without_faults", "control_run"]

SLACK_S = 86_400
"""An alert of the control run stands for a suspect when their spans overlap with this slack (a day: rules judge days)."""


def without_faults(scenario: Scenario) -> Scenario:
    """``scenario`` with every labelled data fault off (the clock noise is not a fault and stays, so the physics does)."""
    off = FaultRates(
        gap=0, duplicate=0, late_upload=0, out_of_order=0, unit_wh=0, register_reset=0, malformed=0,
        clock_noise=scenario.faults.clock_noise,
    )  # fmt: skip
    return replace(scenario, faults=off)


class _AreasOnly(OfflineRunner):
    """An offline runner that takes the archive records and uploads of some areas (their key) and drops the rest."""

    def __init__(self, areas: set[str], thresholds: Path | None) -> None:
        super().__init__(load_thresholds(thresholds))
        self._areas = areas

    def archive(self, key: str, value: bytes) -> None:
        if key in self._areas:
            super().archive(key, value)

    def raw(self, key: str, value: bytes) -> None:
        if key in self._areas:
            super().raw(key, value)


def _raised(suspect: dict, alerts: list[Alert]) -> bool:
    """Whether one of ``alerts`` has the suspect's type and subject and a span overlapping its (with :data:`SLACK_S`)."""
    first, last = parse_ts(suspect["first_seen"]), parse_ts(suspect["last_seen"])
    return any(
        a.type == suspect["type"]
        and a.subject == (suspect["subject_kind"], suspect["subject_id"])
        and a.first_seen <= last + SLACK_S
        and a.last_seen >= first - SLACK_S
        for a in alerts
    )


def control_run(check: FaultCheck, scenario: Scenario, thresholds: Path | None = None) -> None:
    """Run the suspects' areas of ``scenario`` again without data faults; mark each suspect and count ``caused``."""
    areas = sorted({s["area_id"] for s in check.suspects})
    runner = _AreasOnly(set(areas), thresholds)
    Simulation(without_faults(scenario)).run(runner)
    again = [Alert.of(obj) for obj in fold_alerts(runner.finish().records)]
    for suspect in check.suspects:
        suspect["in_control"] = _raised(suspect, again)
    check.control_areas = areas
    check.caused = sum(not s["in_control"] for s in check.suspects)
