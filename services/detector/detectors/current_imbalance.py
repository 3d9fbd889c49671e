"""current_imbalance (电流不平衡): a three-phase meter's phase currents differ a lot, most of its loaded day.

Rule (shared/domain.md): per interval, ``(max − min) / max`` of the three
phase currents above ``max_imbalance_pct`` while the largest phase
carries at least ``load_current_pct_ib`` % of basic current ("under
load") and no phase is dead (below ``[current_loss] max_current_pct_ib``:
that interval is current_loss's case, 失流, and counting it here too would
raise a second alert for one fault); sustained: at least ``min_intervals`` such intervals in a row, and
imbalanced in at least ``min_loaded_share_pct`` % of the day's loaded
intervals. Judged once a day from counters filled per frame (the day view
only has daily mean currents, which hide an imbalance that comes and
goes). Late and out-of-order frames are not counted, so the run means
consecutive intervals.

State per meter (8 B): uint16 ``loaded``, ``imbalanced`` (the open day's
interval counts), ``run`` (current run), ``best_run`` (the day's longest).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from services.detector.archive import AreaArchive
from services.detector.day import DayView
from services.detector.detectors.base import Detector
from services.detector.findings import Finding, exceed_score, plain
from services.detector.interval import IntervalView
from services.detector.state import Arrays
from services.detector.thresholds import Thresholds

__all__ = ["CurrentImbalance"]

_U16_MAX = 65535


class CurrentImbalance(Detector):
    """Counts imbalanced loaded intervals per day."""

    name: ClassVar[str] = "current_imbalance"

    def init_state(self, n_meters: int) -> Arrays:
        return {k: np.zeros(n_meters, np.uint16) for k in ("loaded", "imbalanced", "run", "best_run")}

    def on_frame(self, view: IntervalView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        if view.late:
            return []
        sec, idx = self.name, view.idx
        cur = view.frame.current
        three = (archive.phases[idx] == 3) & (np.count_nonzero(~np.isnan(cur), axis=1) == 3)
        if not three.any():
            return []
        rows, cur = idx[three], cur[three]
        top, ib = cur.max(axis=1), archive.basic_current_a[rows]
        dead_phase = cur.min(axis=1) < th.num("current_loss", "max_current_pct_ib") / 100.0 * ib
        loaded = (top >= th.num(sec, "load_current_pct_ib") / 100.0 * ib) & ~dead_phase
        with np.errstate(invalid="ignore", divide="ignore"):
            imbalanced = loaded & ((top - cur.min(axis=1)) / top > th.num(sec, "max_imbalance_pct") / 100.0)
        for key, add in (("loaded", loaded), ("imbalanced", imbalanced)):
            state[key][rows] = np.minimum(state[key][rows].astype(np.int32) + add, _U16_MAX)
        run = np.where(imbalanced, np.minimum(state["run"][rows].astype(np.int32) + 1, _U16_MAX), 0)
        state["run"][rows] = run
        state["best_run"][rows] = np.maximum(state["best_run"][rows], run)
        return []

    def on_day(self, day: DayView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        sec = self.name
        loaded = state["loaded"].astype(np.int64)
        imbalanced = state["imbalanced"].astype(np.int64)
        best = state["best_run"].astype(np.int64)
        min_run = th.count(sec, "min_intervals")
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(loaded > 0, imbalanced / loaded, 0.0)
        min_share = th.num(sec, "min_loaded_share_pct") / 100.0
        hit = (best >= min_run) & (share >= min_share)
        out = [
            Finding.of(
                th,
                sec,
                archive.meter_ids[i],
                day.area_id,
                day.end,
                exceed_score(share[i], min_share),
                {
                    "imbalanced_intervals": int(imbalanced[i]),
                    "loaded_intervals": int(loaded[i]),
                    "imbalanced_share_pct": plain(100.0 * share[i], 1),
                    "longest_run_intervals": int(best[i]),
                    "mean_phase_current_a": [plain(c, 3) for c in day.phase_current_a[i]],
                    "max_imbalance_pct": th.num(sec, "max_imbalance_pct"),
                },
            )
            for i in np.flatnonzero(hit)
        ]
        for key in ("loaded", "imbalanced", "best_run"):
            state[key][:] = 0
        return out
