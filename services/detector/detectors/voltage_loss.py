"""voltage_loss (失压): a phase's voltage collapsed while that phase carries load.

Rule (shared/domain.md): a phase voltage below ``trip_pct_nominal`` % of
nominal while that phase carries more than ``min_current_pct_ib`` % of basic
current, for at least ``min_duration_s``; the phase recovers at
``recover_pct_nominal`` %. Readings are instantaneous samples once per
interval, so one reading stands for its interval: with intervals of at least
``min_duration_s`` (15-min data) one reading suffices, with shorter ones the
condition must hold on two consecutive readings. Between trip and recovery
(hysteresis) the phase stays lost below the recovery level as long as it
carries current; a dead phase without current (outage) is not voltage loss.
A meter's own ``voltage_loss`` event fires too. Late readings are judged but do
not move the hysteresis.

State per meter (1 B): ``lost`` uint8, bit p set while phase p is lost.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from services.detector.archive import AreaArchive
from services.detector.detectors.base import Detector, event_findings, row_findings
from services.detector.findings import Finding, exceed_score, plain
from services.detector.interval import IntervalView
from services.detector.state import Arrays
from services.detector.thresholds import Thresholds

__all__ = ["VoltageLoss"]

_PHASE_BITS = np.array([1, 2, 4], dtype=np.uint8)
_PHASE_NAMES = ("a", "b", "c")


class VoltageLoss(Detector):
    """Per phase: trip below the trip level under load, recover at the recovery level."""

    name: ClassVar[str] = "voltage_loss"

    def init_state(self, n_meters: int) -> Arrays:
        return {"lost": np.zeros(n_meters, dtype=np.uint8)}

    def on_frame(self, view: IntervalView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        sec, idx = self.name, view.idx
        volt, cur = view.frame.voltage, view.frame.current
        un = archive.nominal_voltage_v[idx][:, None]
        ib = archive.basic_current_a[idx][:, None]
        was = (state["lost"][idx][:, None] & _PHASE_BITS) != 0
        level = np.where(was, th.num(sec, "recover_pct_nominal"), th.num(sec, "trip_pct_nominal")) / 100 * un
        loaded = cur > th.num(sec, "min_current_pct_ib") / 100 * ib
        low = archive.phase_mask(idx) & (volt < level) & loaded
        if view.frame.interval_s < th.num(sec, "min_duration_s"):
            low &= was
        if not view.late:
            recovered = volt >= th.num(sec, "recover_pct_nominal") / 100 * un
            keep = was & ~recovered  # a reading without voltage keeps the phase's state
            state["lost"][idx] = ((low | keep) * _PHASE_BITS).sum(axis=1, dtype=np.uint8)
        hit = low.any(axis=1)
        pct = volt / un * 100
        trip = th.num(sec, "trip_pct_nominal")

        def judge(i: int) -> tuple[float, dict[str, object]]:
            phases = [p for p in range(3) if low[i, p]]
            return exceed_score(trip, min(pct[i, p] for p in phases)), {
                "phases": [_PHASE_NAMES[p] for p in phases],
                "voltage_v": [plain(volt[i, p], 1) for p in phases],
                "voltage_pct_nominal": [plain(pct[i, p], 1) for p in phases],
                "current_a": [plain(cur[i, p], 3) for p in phases],
                "nominal_voltage_v": plain(un[i, 0]),
                "basic_current_a": plain(ib[i, 0]),
                "trip_pct_nominal": trip,
                "recover_pct_nominal": th.num(sec, "recover_pct_nominal"),
            }

        return row_findings(th, sec, view, hit, judge) + event_findings(th, sec, view, th.texts(sec, "event_codes"))
