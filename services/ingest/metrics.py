"""Ingest's Prometheus metrics (``amiwatch_ingest_*``), served on ``--metrics-port``.

Every label takes values from a small fixed set (message kinds, reason
codes, ``closed_by`` values, partition numbers), never an id. Counters count
committed work only: the service adds a batch's numbers after its
transaction commits, so an aborted or replayed batch is not counted twice.
Frames and their contents (duplicates, conflicts, late readings) are counted
when a frame is emitted, which a replay never repeats.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from services.ingest.frames import CLOSED_BY
from services.ingest.validation import KINDS, REASONS

__all__ = [
    "MESSAGES",
    "READINGS",
    "REPLAYED",
    "FRAMES",
    "LATE_READINGS",
    "DUPLICATES",
    "CONFLICTS",
    "OPEN_FRAMES",
    "BATCH_SECONDS",
    "COMMIT_SECONDS",
    "TRANSACTIONS",
    "LAG",
    "ARCHIVE_AREAS",
    "ARCHIVE_IGNORED",
    "count_frame",
    "serve",
]

MESSAGES = Counter(
    "amiwatch_ingest_messages_total", "Raw messages judged, by kind (unknown: not a raw message kind).", ["kind"]
)
READINGS = Counter(
    "amiwatch_ingest_readings_total",
    "Readings accepted, and dead letters by reason (a message rejected whole counts once).",
    ["result", "reason"],
)
REPLAYED = Counter(
    "amiwatch_ingest_replayed_messages_total", "Raw messages re-read from a checkpoint after a restart or rebalance."
)
FRAMES = Counter("amiwatch_ingest_frames_emitted_total", "Area frames emitted, by what closed them.", ["closed_by"])
LATE_READINGS = Counter(
    "amiwatch_ingest_late_readings_total", "Readings that arrived after their frame closed (sent in correction frames)."
)
DUPLICATES = Counter("amiwatch_ingest_duplicates_dropped_total", "Identical re-deliveries dropped (into open frames, or of readings a closed frame already sent).")
CONFLICTS = Counter(
    "amiwatch_ingest_conflicts_total", "Differing re-deliveries kept as conflict evidence (one per field)."
)
OPEN_FRAMES = Gauge("amiwatch_ingest_open_frames", "Frames waiting to close, over all assigned partitions.")
BATCH_SECONDS = Histogram(
    "amiwatch_ingest_batch_seconds",
    "Wall time to judge and assemble one poll batch (the previous batch's transaction commits meanwhile).",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
COMMIT_SECONDS = Histogram(
    "amiwatch_ingest_transaction_commit_seconds",
    "Wall time from the first send of a batch to its transaction commit.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
TRANSACTIONS = Counter("amiwatch_ingest_transactions_total", "Output transactions, by outcome.", ["outcome"])
LAG = Gauge(
    "amiwatch_ingest_consumer_lag_messages",
    "Raw records not yet consumed (last stable offset - position).",
    ["partition"],
)
ARCHIVE_AREAS = Gauge("amiwatch_ingest_archive_areas", "Areas in the archive as ingest currently knows it.")
ARCHIVE_IGNORED = Gauge("amiwatch_ingest_archive_ignored_records", "Malformed archive records ignored since start.")


# Every series of the bounded label sets exists from the start (at 0), so a rate over it is defined.
for _kind in (*KINDS, "unknown"):
    MESSAGES.labels(_kind)
READINGS.labels("accepted", "none")
for _reason in REASONS:
    READINGS.labels("rejected", _reason)
for _closed_by in CLOSED_BY:
    FRAMES.labels(_closed_by)
for _outcome in ("committed", "aborted", "fenced"):
    TRANSACTIONS.labels(_outcome)


def count_frame(frame: dict[str, Any]) -> None:
    """Count one emitted frame and what it carries."""
    FRAMES.labels(frame["closed_by"]).inc()
    if frame["closed_by"] == "late":
        LATE_READINGS.inc(frame["stats"]["readings"])
    DUPLICATES.inc(frame["stats"]["duplicates_dropped"])
    CONFLICTS.inc(len(frame["conflicts"]))


def serve(port: int) -> None:
    """Serve ``/metrics`` on ``port`` (0: do not serve)."""
    if port:
        start_http_server(port)
