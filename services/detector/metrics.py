"""The detector's Prometheus metrics (``amiwatch_detector_*``), served on ``--metrics-port``.

Labels take values from small fixed sets only: frame results
(:data:`FRAME_RESULTS`), the anomaly catalogue (``schemas/common.json``,
``anomaly_type``; anything else counts as ``other``), alert ops and input
partition numbers. Never an area or meter id.

Counts are of work done by this process. The detector is at-least-once
(see ``services/detector/app.py``): a frame re-read after a crash counts
again, as ``duplicate`` when the restored state had already folded it in.
"""

from __future__ import annotations

import time

import schemas
from prometheus_client import Counter, Gauge, Histogram, start_http_server

__all__ = [
    "FRAME_RESULTS",
    "ALERT_TYPES",
    "FRAMES",
    "FRAME_SECONDS",
    "ALERTS",
    "AREAS",
    "EVENT_LAG",
    "CONSUMER_LAG",
    "count_alert",
    "observe_frame",
    "last_frame_at",
    "touch",
    "set_consumer_lag",
    "serve",
]

# processed: folded into the area's state; duplicate: already folded in (a
# re-delivery after a restart); no_archive: the area's archive never arrived;
# error: undecodable or failed in the pipeline (logged with its offset, skipped).
FRAME_RESULTS = ("processed", "duplicate", "no_archive", "error")
ALERT_TYPES = frozenset(schemas.load("common")["$defs"]["anomaly_type"]["enum"])

FRAMES = Counter("amiwatch_detector_frames_total", "Area frames consumed, by result.", ["result"])
FRAME_SECONDS = Histogram(
    "amiwatch_detector_frame_seconds",
    "Wall time for one frame: decode, state load, detectors, alert delivery, state store.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
ALERTS = Counter("amiwatch_detector_alerts_total", "Alert records sent to the alerts topic, by type and op.", ["type", "op"])
AREAS = Gauge("amiwatch_detector_areas", "Areas whose state this worker holds (active and standby partitions).")
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

for _result in FRAME_RESULTS:
    FRAMES.labels(_result)

_last_frame_at = time.monotonic()
_lag_partitions: set[int] = set()


def count_alert(record: dict[str, object]) -> None:
    """Count one alert record sent."""
    kind = record.get("type")
    ALERTS.labels(kind if kind in ALERT_TYPES else "other", str(record.get("op"))).inc()


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
