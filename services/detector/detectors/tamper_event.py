"""tamper_event (开表盖 / 磁场干扰): the meter reports physical interference.

Rule (shared/domain.md): the event itself (``codes``: cover_open,
terminal_cover_open, magnetic_field), raised at once at the event's own time,
late frames included. Attaching it to an open theft case of the same meter is
the AlertBook's job (``attach_to``). Stateless.
"""

from __future__ import annotations

from typing import ClassVar

from services.detector.archive import AreaArchive
from services.detector.detectors.base import Detector, event_findings
from services.detector.findings import Finding
from services.detector.interval import IntervalView
from services.detector.state import Arrays
from services.detector.thresholds import Thresholds

__all__ = ["TamperEvent"]


class TamperEvent(Detector):
    """One finding per tamper event."""

    name: ClassVar[str] = "tamper_event"

    def on_frame(self, view: IntervalView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        return event_findings(th, self.name, view, th.texts(self.name, "codes"))
