"""The detector's Prometheus metrics (``amiwatch_detector_*``), served on ``--metrics-port``.

Labels take values from small fixed sets only: frame results
(:data:`FRAME_RESULTS`), the anomaly catalogue (``schemas/common.json``,
``anomaly_type``; anything else counts as ``other``), alert severities and
ops (``schemas/alert.json``), loss classes (:data:`LOSS_CLASSES`) and input
partition numbers. Never an area or meter id: areas are counted per loss
class, not given a series each.

Counts are of work done by this process. The detector is at-least-once
(see ``services/detector/app.py``): a frame re-read after a crash counts
again, as ``duplicate`` when the restored state had already folded it in.
"""

from __future__ import annotations

import time
from typing import Any

import schemas
from prometheus_client import Counter, Gauge, Histogram, start_http_server

__all__ = [
    "FRAME_RESULTS",
    "ALERT_TYPES",
    "FRAMES",
    "FRAME_SECONDS",
    "ALERT_SEVERITIES",
    "LOSS_CLASSES",
    "ALERTS",
    "AREAS",
    "AREAS_BY_LOSS_CLASS",
    "EVENT_LAG",
    "CONSUMER_LAG",
    "LOST_FRAMES",
    "CHECKPOINTS",
    "STATES_WRITTEN",
    "count_checkpoint",
    "count_alert",
    "count_lost_frames",
    "observe_frame",
    "last_frame_at",
    "touch",
    "set_consumer_lag",
    "loss_class",
    "observe_area",
    "hold_partitions",
    "serve",
]

# processed: folded into the area's state; duplicate: already folded in (a
# re-delivery after a restart); no_archive: the area's archive never arrived;
# error: undecodable or failed in the pipeline (logged with its offset, skipped).
# rebuilt: folded in again, without output, when a worker took over a partition (checkpoint.py).
FRAME_RESULTS = ("processed", "duplicate", "no_archive", "error", "rebuilt")
ALERT_TYPES = frozenset(schemas.load("common")["$defs"]["anomaly_type"]["enum"])
ALERT_SEVERITIES = frozenset(schemas.load("alert")["properties"]["severity"]["enum"])
# An area's loss class, from its open area-level alerts (the detector's running view of its daily
# balance): high, negative or uncomputable while such an alert is open (in that order when several
# are), compliant otherwise (including an area not judged yet), no_area_meter when its archive
# names no area meter (no balance at all).
LOSS_CLASSES = ("compliant", "high", "negative", "uncomputable", "no_area_meter")
_LOSS_ALERTS = (("area_high_loss", "high"), ("area_negative_loss", "negative"), ("area_loss_uncomputable", "uncomputable"))

FRAMES = Counter("amiwatch_detector_frames_total", "Area frames consumed, by result.", ["result"])
FRAME_SECONDS = Histogram(
    "amiwatch_detector_frame_seconds",
    "Wall time for one frame: decode, state load, detectors, alert delivery, offset store.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
ALERTS = Counter(
    "amiwatch_detector_alerts_total",
    "Alert records sent to the alerts topic, by type, severity and op (op=open: alerts raised).",
    ["type", "severity", "op"],
)
CHECKPOINTS = Counter(
    "amiwatch_detector_checkpoints_total",
    "Partition checkpoints written (the partition's changed area states, then its offsets).",
)
STATES_WRITTEN = Counter("amiwatch_detector_states_written_total", "Area states written to the changelog at checkpoints.")
AREAS = Gauge("amiwatch_detector_areas", "Areas whose state this worker holds (active and standby partitions).")
AREAS_BY_LOSS_CLASS = Gauge(
    "amiwatch_detector_areas_by_loss_class",
    "Areas of this worker's active partitions by loss class (sum over workers: the fleet), as of each area's latest frame.",
    ["loss_class"],
)
EVENT_LAG = Gauge(
    "amiwatch_detector_event_lag_seconds",
    "Wall clock minus the event time (interval end) of the newest frame processed.",
)
CONSUMER_LAG = Gauge(
    "amiwatch_detector_consumer_lag_messages",
    "Frames-topic records after the last one processed (end offset - 1 - processed offset; "
    "a transaction marker may count as one).",
    ["partition"],
)

# gap: found before a later frame of the same partition; tail: found at a quiet partition's end.
LOST_FRAMES_FOUND_BY = ("gap", "tail")
LOST_FRAMES = Counter(
    "amiwatch_detector_lost_frames_found_total",
    "Times the offset check found frames the consumer never handed to the agent "
    "(gap: before a later frame, applied first; tail: at a quiet partition's end, read again).",
    ["found_by"],
)

for _result in FRAME_RESULTS:
    FRAMES.labels(_result)
for _found_by in LOST_FRAMES_FOUND_BY:
    LOST_FRAMES.labels(_found_by)
for _class in LOSS_CLASSES:
    AREAS_BY_LOSS_CLASS.labels(_class).set(0)

_last_frame_at = time.monotonic()
_lag_partitions: set[int] = set()
_area_class: dict[bytes, tuple[int, str]] = {}  # area key → (frames partition, loss class)
_class_counts: dict[str, int] = dict.fromkeys(LOSS_CLASSES, 0)


def count_alert(record: dict[str, object]) -> None:
    """Count one alert record sent."""
    kind, severity, op = record.get("type"), record.get("severity"), record.get("op")
    ALERTS.labels(
        kind if kind in ALERT_TYPES else "other",
        severity if severity in ALERT_SEVERITIES else "other",
        op if op in ("open", "update", "resolve") else "other",
    ).inc()


def loss_class(state: Any, archive: Any) -> str:
    """The loss class (:data:`LOSS_CLASSES`) of an area, from its ``AreaState`` and ``AreaArchive``."""
    if getattr(archive, "area_meter_id", None) is None:
        return "no_area_meter"
    for alert_type, name in _LOSS_ALERTS:
        if state.alerts.get(alert_type, "area", state.area_id) is not None:
            return name
    return "compliant"


def _set_class(key: bytes, entry: tuple[int, str] | None) -> None:
    old = _area_class.pop(key, None)
    if old is not None:
        _class_counts[old[1]] -= 1
        AREAS_BY_LOSS_CLASS.labels(old[1]).set(_class_counts[old[1]])
    if entry is not None:
        _area_class[key] = entry
        _class_counts[entry[1]] += 1
        AREAS_BY_LOSS_CLASS.labels(entry[1]).set(_class_counts[entry[1]])


def observe_area(partition: int, key: bytes, state: Any, archive: Any) -> None:
    """Record the loss class of the area ``key`` (of frames partition ``partition``) after one of its frames."""
    _set_class(key, (partition, loss_class(state, archive)))


def hold_partitions(partitions: set[int]) -> None:
    """Forget the areas of frames partitions this worker no longer owns (another worker counts them now)."""
    for key in [k for k, (p, _) in _area_class.items() if p not in partitions]:
        _set_class(key, None)


def touch() -> None:
    """A frame arrived (called before it is handled, so a slow frame is not idleness)."""
    global _last_frame_at
    _last_frame_at = time.monotonic()


def observe_frame(result: str, seconds: float, event_ts: int | None) -> None:
    """Count one frame's result and time; ``event_ts`` (interval end, epoch s) updates the event lag."""
    global _last_frame_at
    _last_frame_at = time.monotonic()
    FRAMES.labels(result).inc()
    FRAME_SECONDS.observe(seconds)
    if event_ts is not None:
        EVENT_LAG.set(time.time() - event_ts)


def count_checkpoint(states: int) -> None:
    """Count one partition checkpoint that wrote ``states`` area states."""
    CHECKPOINTS.inc()
    STATES_WRITTEN.inc(states)


def count_lost_frames(found_by: str) -> None:
    """Count one run of frames Faust lost that the offset check found (``found_by``: gap or tail)."""
    LOST_FRAMES.labels(found_by).inc()


def last_frame_at() -> float:
    """Monotonic time of the last frame consumed (or of the import of this module, before any)."""
    return _last_frame_at


def set_consumer_lag(lag: dict[int, int]) -> None:
    """Set the lag of each assigned frames partition; partitions no longer assigned disappear."""
    for partition in _lag_partitions - set(lag):
        CONSUMER_LAG.remove(str(partition))
    _lag_partitions.clear()
    _lag_partitions.update(lag)
    for partition, value in lag.items():
        CONSUMER_LAG.labels(str(partition)).set(max(0, value))


def serve(port: int) -> None:
    """Serve ``/metrics`` on ``port`` (0: do not serve)."""
    if port:
        start_http_server(port)
