"""Alert latency: from a reading's arrival in Kafka to its alert being readable through the API.

While the latency phase streams readings into a running pipeline:

- :class:`ApiPoller` polls ``GET /api/v1/alerts?changed_since=<token>``
  (a viewer key) as fast as the API answers, and notes the wall-clock time
  at which each (alert id, ``last_seen``) pair was first returned: an alert
  opened, or updated with newer evidence, became readable then.
- :func:`arrival_index` reads the raw records the phase published, from the
  offsets where it began, and keeps for each (area id, interval ``ts``) the
  newest Kafka timestamp of the messages that carried that area's readings
  for that interval (the producer's create time, on the same clock).

An alert's latency is the first time minus the arrival of its area's data
for its ``last_seen`` interval (the evidence that raised or moved it).
:func:`stages` splits it at the frame and the alert record (their Kafka
timestamps), so a slow hop is named, not guessed. An
alert whose ``last_seen`` was not published in this phase (history from the
load) gives no sample. Rules that are judged only when later data arrives
(a frame closed by its grace period, a day closed) include that wait: it is
part of what a user sees.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import closing
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import orjson
from kafka import KafkaConsumer, TopicPartition

__all__ = ["ApiPoller", "arrival_index", "frame_index", "alert_index", "latencies", "stages", "percentiles", "epoch"]


def epoch(ts: str) -> int:
    """Epoch seconds of an ISO-8601 timestamp (``Z`` or an offset)."""
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp())


class ApiPoller:
    """Polls the API's alert list in a thread; ``first_seen[(id, last_seen)] = (wall time, area id, type)``."""

    def __init__(self, base_url: str, token: str, pause_s: float = 0.05) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.pause_s = pause_s
        self.first_seen: dict[tuple[str, str], tuple[float, str, str]] = {}
        self.polls = 0
        self.errors = 0
        self._sync: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-api-poller", daemon=True)

    def _get(self, params: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/api/v1/alerts?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def start(self) -> ApiPoller:
        """Take the current sync token (everything already in the store is not this phase's), then poll."""
        for attempt in range(20):  # a just-started API has answered an empty body once (fresh-clone CI)
            try:
                self._sync = self._get({"limit": 1})["sync_token"]
                break
            except (OSError, urllib.error.URLError, ValueError, KeyError):
                if attempt == 19:
                    raise
                time.sleep(0.25)
        self._thread.start()
        return self

    def poll_once(self) -> int:
        """One poll, following pages until nothing more changed; returns how many items it saw."""
        seen = 0
        while True:
            page = self._get({"changed_since": self._sync, "limit": 500})
            now = time.time()
            self.polls += 1
            for item in page["items"]:
                self.first_seen.setdefault((item["id"], item["last_seen"]), (now, item["area_id"], item["type"]))
            seen += len(page["items"])
            self._sync = page["sync_token"]
            if len(page["items"]) < 500:
                return seen

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except (OSError, urllib.error.URLError, ValueError, KeyError):
                self.errors += 1
            self._stop.wait(self.pause_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _index(bootstrap: str, topic: str, start: dict[int, int],
           key_of: Callable[[dict[str, Any]], tuple[Any, str | None]], newest: bool) -> dict[Any, tuple[float, str | None]]:
    """``key_of(value)`` = (key, label) → newest (or first) Kafka timestamp (epoch s) of ``topic``'s committed
    records after ``start``, with that record's label.

    A value that is not JSON or that ``key_of`` cannot key (a malformed message the simulator sends on
    purpose) is skipped.
    """
    index: dict[Any, tuple[float, str | None]] = {}
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=10_000,
                             isolation_level="read_committed", client_id="amiwatch-bench-latency")
    with closing(consumer):
        partitions = [TopicPartition(topic, p) for p in sorted(start)]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, start[tp.partition])
        ends = consumer.end_offsets(partitions)
        waiting = {tp for tp in partitions if ends[tp] > start[tp.partition]}
        while waiting:
            for messages in consumer.poll(timeout_ms=1000).values():
                for m in messages:
                    try:
                        key, label = key_of(orjson.loads(m.value))
                    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                        continue
                    at = m.timestamp / 1000
                    if key not in index or (at > index[key][0] if newest else at < index[key][0]):
                        index[key] = (at, label)
            for tp in list(waiting):
                if consumer.position(tp) >= ends[tp]:
                    waiting.discard(tp)
    return index


def arrival_index(bootstrap: str, topic: str, start: dict[int, int]) -> dict[tuple[str, int], float]:
    """(area id, interval ts) → newest Kafka timestamp (epoch s) of its raw records after ``start``."""
    index = _index(bootstrap, topic, start, lambda v: ((v["area_id"], epoch(v["ts"])), None), newest=True)
    return {key: at for key, (at, _) in index.items()}


def frame_index(bootstrap: str, topic: str, start: dict[int, int]) -> dict[tuple[str, int], tuple[float, str]]:
    """(area id, interval ts) → Kafka timestamp and ``closed_by`` of its first frame (revision 0) after ``start``."""

    def key_of(v: dict[str, Any]) -> tuple[tuple[str, int], str]:
        if v["revision"] != 0:
            raise ValueError("a correction")
        return (v["area_id"], epoch(v["ts"])), v["closed_by"]

    return _index(bootstrap, topic, start, key_of, newest=False)  # type: ignore[return-value]


def alert_index(bootstrap: str, topic: str, start: dict[int, int]) -> dict[tuple[str, str], float]:
    """(alert id, last_seen) → Kafka timestamp of the first alert record saying so after ``start``."""
    index = _index(bootstrap, topic, start, lambda v: ((v["alert_id"], v["last_seen"]), None), newest=False)
    return {key: at for key, (at, _) in index.items()}


def latencies(first_seen: dict[tuple[str, str], tuple[float, str, str]], index: dict[tuple[str, int], float]
              ) -> dict[str, list[float]]:
    """Alert type → seconds from data arrival to readability, one per (alert, last_seen) with arrival data."""
    out: dict[str, list[float]] = {}
    for (_, last_seen), (readable_at, area_id, kind) in first_seen.items():
        arrived = index.get((area_id, epoch(last_seen)))
        if arrived is not None:
            out.setdefault(kind, []).append(readable_at - arrived)
    return out


def stages(first_seen: dict[tuple[str, str], tuple[float, str, str]], arrived: dict[tuple[str, int], float],
           framed: dict[tuple[str, int], tuple[float, str]], alerted: dict[tuple[str, str], float]
           ) -> dict[str, list[float]]:
    """Where each latency sample's time went, from the Kafka timestamps of the records between.

    ``ingest``: the area's last raw record for the ``last_seen`` interval → its frame produced, also
    split by how the frame closed (``ingest_complete``: every meter reported; ``ingest_grace``: it
    waited out the grace period of event time for missing meters, which the bench's compressed time
    makes a fraction of a second and real time makes ``grace_intervals`` intervals);
    ``detector``: frame produced → the alert record produced (waiting for ingest's transaction to
    commit included); ``api``: alert produced → readable through the API. Producers stamp create
    time, on the same clock as the poller. Samples missing a record are left out of every stage.
    """
    out: dict[str, list[float]] = {"ingest": [], "ingest_complete": [], "ingest_grace": [], "detector": [], "api": []}
    for (alert_id, last_seen), (readable_at, area_id, _kind) in first_seen.items():
        key = (area_id, epoch(last_seen))
        a, frame, p = arrived.get(key), framed.get(key), alerted.get((alert_id, last_seen))
        if a is None or frame is None or p is None:
            continue
        f, closed_by = frame
        out["ingest"].append(f - a)
        out.setdefault(f"ingest_{closed_by}", []).append(f - a)
        out["detector"].append(p - f)
        out["api"].append(readable_at - p)
    return out


def percentiles(samples: list[float]) -> dict[str, float | int | None]:
    if not samples:
        return {"p50_s": None, "p99_s": None, "max_s": None, "samples": 0}
    values = np.asarray(samples)
    return {
        "p50_s": float(np.percentile(values, 50)),
        "p99_s": float(np.percentile(values, 99)),
        "max_s": float(values.max()),
        "samples": len(samples),
    }
