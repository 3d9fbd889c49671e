"""current_loss (失流): on a three-phase meter one phase carries no current while the others do.

Rule (shared/domain.md): one phase below ``max_current_pct_ib`` % of basic
current with its voltage above ``min_voltage_pct_nominal`` % of nominal (the
phase is energised, so the missing current is a bypassed or open CT, not an
outage) while another phase carries at least ``load_current_pct_ib`` %.
Single-phase meters cannot show it. A meter's own ``current_loss`` event fires
too. Stateless: the AlertBook keeps the alert open while readings repeat it.
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

__all__ = ["CurrentLoss"]

_PHASE_NAMES = ("a", "b", "c")


class CurrentLoss(Detector):
    """Flags energised three-phase meters with one dead phase current under load."""

    name: ClassVar[str] = "current_loss"

    def on_frame(self, view: IntervalView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        sec, idx = self.name, view.idx
        volt, cur = view.frame.voltage, view.frame.current
        un = archive.nominal_voltage_v[idx][:, None]
        ib = archive.basic_current_a[idx][:, None]
        three = (archive.phases[idx] == 3)[:, None]
        load = th.num(sec, "load_current_pct_ib") / 100 * ib
        dead = (
            three
            & (cur < th.num(sec, "max_current_pct_ib") / 100 * ib)
            & (volt > th.num(sec, "min_voltage_pct_nominal") / 100 * un)
        )
        loaded = (cur >= load).any(axis=1)
        hit = dead.any(axis=1) & loaded

        def judge(i: int) -> tuple[float, dict[str, object]]:
            return exceed_score(np.nanmax(cur[i]), load[i, 0]), {
                "phases": [_PHASE_NAMES[p] for p in range(3) if dead[i, p]],
                "current_a": [plain(c, 3) for c in cur[i]],
                "voltage_v": [plain(v, 1) for v in volt[i]],
                "basic_current_a": plain(ib[i, 0]),
                "max_current_pct_ib": th.num(sec, "max_current_pct_ib"),
                "load_current_pct_ib": th.num(sec, "load_current_pct_ib"),
            }

        return row_findings(th, sec, view, hit, judge) + event_findings(th, sec, view, th.texts(sec, "event_codes"))
