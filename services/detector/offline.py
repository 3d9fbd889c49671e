"""The offline runner: raw messages → ingest's checks and frames → AreaPipeline per area → alert records, no Kafka.

`amiwatch evaluate` (a simulated scenario) and `amiwatch backtest`
(historical files) must report the alerts the live service would raise, so
they run the services' own code, in the order the stream runs it:

- ingest: :class:`services.ingest.partition.PartitionProcessor`, the pure
  core of ``amiwatch ingest`` (validation, admission against the archive,
  :class:`~services.ingest.frames.FrameAssembler`), fed the raw messages in
  delivery order as one input partition;
- detector: every frame ingest closes goes, in the order it closes, through
  :func:`~services.detector.frame.decode_frame` and
  :meth:`AreaPipeline.process` with its area's archive
  (:func:`~services.detector.archive.decode_archive`) and state.

Archive records are applied where they occur in the stream (a meter
replacement re-publishes its area's record just before the new meter's
first reading), to ingest's view and the detector's at once. At the end,
ingest's open frames are flushed (``closed_by: idle``, as ``amiwatch ingest
--exit-when-idle`` does) and every area's open day is closed
(:meth:`AreaPipeline.flush`): the data is complete, so its last day is too.

Why the result equals the stream's: frames are a deterministic function of
each area's raw messages in order (Kafka keeps that order per key), and the
detector's alerts a deterministic function of each area's frames in order.
One partition here against several in Kafka changes nothing for input in
time order: the only partition-wide rule (a frame more than ``stale_s``
behind the partition's newest reading closes) never fires when areas
report in step. Frames are handed over as the dicts ingest publishes,
without the JSON round trip, which orjson makes exact for these values.

The runner also has the simulator's ``Sink`` shape (``archive``/``raw``;
``label``, ``csv`` and ``barrier`` do nothing: the detector never sees the
ground truth), so a ``Simulation`` can stream straight into it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.detector.archive import AreaArchive
from services.detector.codec import archive_from_bytes
from services.detector.detectors import DETECTORS
from services.detector.detectors.wrong_area import InMemoryVoltageDirectory, VoltageDirectory, with_voltage_directory
from services.detector.frame import decode_frame
from services.detector.pipeline import AreaPipeline
from services.detector.state import AreaState
from services.detector.thresholds import Thresholds
from services.ingest.archive_view import ArchiveView
from services.ingest.partition import PartitionProcessor

__all__ = ["DayObserver", "OfflineResult", "OfflineRunner", "fold_alerts"]

_RAW_TOPIC = "offline.raw"


class DayObserver(Protocol):
    """Looks at an area's state before and after each pipeline call (the backtest's score table).

    Only the pipeline knows when a day closes (it keeps a day open for a
    grace period after midnight); an observer sees it as ``day_start``
    moving between ``before`` and ``after``.
    """

    def before(self, area_id: str, state: AreaState) -> None:
        """The pipeline is about to process a frame of the area (or flush it)."""

    def after(self, area_id: str, state: AreaState) -> None:
        """The pipeline has processed it."""


class _Unobserved:
    """The observer of a run nobody observes."""

    def before(self, area_id: str, state: AreaState) -> None:
        pass

    def after(self, area_id: str, state: AreaState) -> None:
        pass


@dataclass(slots=True)
class _Record:
    """A raw message as ingest's PartitionProcessor reads a Kafka record (``services.ingest.dlq.RawRecord``)."""

    offset: int
    key: bytes | None
    value: bytes
    topic: str = _RAW_TOPIC
    partition: int = 0
    timestamp: int | None = None
    headers: Any = ()


@dataclass(slots=True)
class OfflineResult:
    """What one offline run produced: the alert records in emission order, and what ingest saw."""

    records: list[dict[str, Any]]
    messages: int
    readings: int
    frames: int
    rejected: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # spent inside the runner (ingest and detector), not producing its input


def fold_alerts(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latest record of each alert id, in the order the alerts opened.

    An alert's records (open, update…, resolve) share its id, type, subject
    and ``first_seen``; the latest carries its last ``last_seen``, status,
    highest severity and score, and newest evidence. That is the alert as
    the API's sink (an upsert by id) ends up holding it.
    """
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        latest[record["alert_id"]] = record
    return list(latest.values())


class OfflineRunner:
    """Feeds raw messages and archive records through ingest and the detector, in-process."""

    wants_csv = False

    def __init__(
        self,
        thresholds: Thresholds,
        *,
        observer: DayObserver | None = None,
        voltage_directory: VoltageDirectory | None = None,
    ) -> None:
        """``thresholds`` as the detector service loads them; ingest runs with its defaults (as ``amiwatch ingest``).

        ``voltage_directory``: where wrong_area's voltage rule publishes and reads areas' daily
        profiles; default one in memory holding this runner's areas (all of a one-process run).
        """
        self._view = ArchiveView()
        self._ingest = PartitionProcessor(0, self._view)
        # wrong_area's voltage rule compares each area's meters with the other areas' daily voltage
        # profiles (the Faust app shares them through a global table; `evaluate --workers N`
        # through a dict shared by its worker processes).
        directory = InMemoryVoltageDirectory() if voltage_directory is None else voltage_directory
        self._pipeline = AreaPipeline(thresholds, with_voltage_directory(DETECTORS, directory))
        self._archives: dict[str, AreaArchive] = {}
        self._states: dict[str, AreaState] = {}
        self._observer: DayObserver = observer or _Unobserved()
        self._offset = 0
        self._readings = 0
        self._frames = 0
        self._rejected: Counter[str] = Counter()
        self._records: list[dict[str, Any]] = []
        self._busy = 0.0

    # -- input (the simulator's Sink shape) ---------------------------------------

    def archive(self, key: str, value: bytes) -> None:
        """Apply one ``ami.archive`` record (a new version of an area) to ingest and the detector."""
        started = time.perf_counter()
        self._view.apply(key.encode(), value)
        area = archive_from_bytes(value)
        self._archives[area.area_id] = area
        self._busy += time.perf_counter() - started

    def raw(self, key: str, value: bytes) -> None:
        """Judge one ``ami.readings.raw`` message and run every frame it closes through the detector."""
        started = time.perf_counter()
        outcome = self._ingest.process(_Record(self._offset, key.encode(), value))
        self._offset += 1
        self._readings += outcome.accepted
        self._rejected.update(r.reason for r in outcome.rejections)
        for frame in outcome.frames:
            self._detect(frame)
        self._busy += time.perf_counter() - started

    def label(self, key: str, value: bytes) -> None:
        """Ground truth is not the detector's business (evaluation reads it on its own)."""

    def csv(self, text: str) -> None:
        """The runner takes messages, not the CSV export."""

    def barrier(self) -> None:
        """Nothing is in flight in-process."""

    # -- detector --------------------------------------------------------------------

    def _state(self, area_id: str) -> AreaState:
        state = self._states.get(area_id)
        if state is None:
            state = self._states[area_id] = self._pipeline.new_state(area_id)
        return state

    def _detect(self, obj: dict[str, Any]) -> None:
        self._frames += 1
        frame = decode_frame(obj)
        archive = self._archives[frame.area_id]  # ingest admits no reading of an area without an archive
        state = self._state(frame.area_id)
        self._observer.before(frame.area_id, state)
        self._records += self._pipeline.process(frame, archive, state)
        self._observer.after(frame.area_id, state)

    def finish(self) -> OfflineResult:
        """Flush ingest's open frames and close every area's open day; return everything the run produced."""
        started = time.perf_counter()
        for frame in self._ingest.flush():
            self._detect(frame)
        for area_id in sorted(self._states):
            state, archive = self._states[area_id], self._archives[area_id]
            self._observer.before(area_id, state)
            self._records += self._pipeline.flush(archive, state)
            self._observer.after(area_id, state)
        return OfflineResult(
            records=self._records,
            messages=self._offset,
            readings=self._readings,
            frames=self._frames,
            rejected=dict(sorted(self._rejected.items())),
            seconds=self._busy + time.perf_counter() - started,
        )
