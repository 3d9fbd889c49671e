"""The one protocol every detector implements.

A detector is a plain object (no Kafka, no Faust) named after the catalogue
type it emits (or its family). The pipeline gives it its own named sub-state:
a dict of numpy arrays whose per-meter arrays follow the archive's meter order
(keys starting ``area_`` are area-level; see ``services/detector/state.py``).
Growing, shrinking and reordering that state when the archive changes is done
generically by ``AreaState.realign`` from ``init_state``, so detectors do not
implement it. ``on_frame`` sees each frame once (corrections included, marked
``late``); ``on_day`` sees each closed day once. Both return findings; the
pipeline turns them into alerts. Per-frame work is numpy over the whole area;
Python per finding is fine (findings are rare).

Subclass :class:`Detector` explicitly to inherit the no-op defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Protocol

import numpy as np

from services.detector.archive import AreaArchive
from services.detector.day import DayView
from services.detector.eventtime import format_ts
from services.detector.findings import Finding
from services.detector.interval import IntervalView
from services.detector.state import Arrays
from services.detector.thresholds import Thresholds

__all__ = ["Detector", "Judge", "event_findings", "row_findings"]


class Detector(Protocol):
    """What the pipeline calls; the defaults do nothing, so a detector overrides only what it uses."""

    name: ClassVar[str]

    def init_state(self, n_meters: int) -> Arrays:
        """Initial arrays for ``n_meters`` meters (also used for meters new to the archive)."""
        return {}

    def on_frame(self, view: IntervalView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        """Findings of one interval (``view.idx`` maps frame rows to archive/state rows)."""
        return []

    def on_day(self, day: DayView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        """Findings of one closed day (arrays aligned with the archive)."""
        return []


Judge = Callable[[int], tuple[float, dict[str, Any]]]


def row_findings(th: Thresholds, type_: str, view: IntervalView, mask: np.ndarray, judge: Judge) -> list[Finding]:
    """One finding at the view's interval end per frame row where ``mask`` holds.

    ``judge(row)`` gives the finding's score and evidence; it runs only for
    rows that fire, so the per-frame cost of a quiet frame is the mask alone.
    """
    out: list[Finding] = []
    for i in np.flatnonzero(mask):
        score, evidence = judge(int(i))
        out.append(Finding.of(th, type_, view.meter_ids[i], view.area_id, view.ts, score, evidence))
    return out


def event_findings(th: Thresholds, type_: str, view: IntervalView, codes: Iterable[str]) -> list[Finding]:
    """One finding per meter event of the frame whose code is in ``codes``, at the event's own time.

    The meter itself asserts the condition, so the score is 1.
    """
    wanted = set(codes)
    return [
        Finding.of(th, type_, ev.meter_id, view.area_id, ev.at, 1.0, {"event": ev.code, "at": format_ts(ev.at)})
        for ev in view.frame.events
        if ev.code in wanted
    ]
