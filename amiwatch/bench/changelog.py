"""What the detector's state costs: bytes per meter held, bytes per reading written.

Read after the detector-alone phase, from its changelog topics
(``<prefix>detector-<table>-changelog``, :meth:`Topics.detector_changelog`):

- **state bytes per meter**: the ``area_state`` table as a restarted worker
  would rebuild it (the latest record per area key), divided by the fleet's
  meters: as the worker holds it live (key + the decoded ``AreaState``
  bytes) and as written (key + the lz4-compressed record);
- **changelog bytes written per reading**: every record the phase wrote to
  the changelogs (key + value, uncompressed, all tables and the
  ``area_state`` alone), divided by the readings the detector processed;
- the same on the broker's disk (``DescribeLogDirs`` partition sizes:
  compressed batches with their headers; one replica counted), which
  is what the broker actually wrote. The changelogs are compacted, but a
  fresh topic's records are all in its active segment, which the cleaner
  never touches, so nothing has been compacted away yet.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from amiwatch.settings import Topics

__all__ = ["TABLES", "TopicBytes", "topic_bytes", "log_dir_bytes", "changelog_topics"]

TABLES = ("area_state", "archives", "frame_offsets", "area_voltage")


@dataclass(frozen=True, slots=True)
class TopicBytes:
    """Records of one topic: all of them, and only the latest per key (what compaction keeps)."""

    records: int
    record_bytes: int
    keys: int
    latest_bytes: int
    latest_decoded_bytes: int  # the latest records with their values decoded (= latest_bytes without a decoder)


def topic_bytes(bootstrap: str, topic: str, timeout_s: float = 120.0,
                decode: Callable[[bytes], bytes] | None = None) -> TopicBytes:
    """Read ``topic`` from its beginning to its end and count key + value bytes (``decode``: also decoded)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, client_id="amiwatch-bench-changelog",
                             max_poll_records=10_000, consumer_timeout_ms=int(timeout_s * 1000))
    with closing(consumer):
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        waiting = {tp for tp in partitions if ends[tp] > 0}
        records = total = 0
        latest: dict[bytes | None, tuple[int, int]] = {}  # key → (size, size with the value decoded)
        while waiting:
            for messages in consumer.poll(timeout_ms=1000).values():
                for m in messages:
                    size = len(m.key or b"") + len(m.value or b"")
                    records += 1
                    total += size
                    if m.value is None:
                        latest.pop(m.key, None)  # a tombstone: compaction drops the key
                    else:
                        latest[m.key] = (size, size - len(m.value) + len(decode(m.value)) if decode else size)
            for tp in list(waiting):
                if consumer.position(tp) >= ends[tp]:
                    waiting.discard(tp)
    return TopicBytes(records, total, len(latest), sum(size for size, _ in latest.values()),
                      sum(decoded for _, decoded in latest.values()))


def log_dir_bytes(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """Bytes on the broker's disk per topic (each partition counted once, its largest replica)."""
    wanted = set(topics)
    sizes: dict[tuple[str, int], int] = {}
    with closing(KafkaAdminClient(bootstrap_servers=bootstrap, client_id="amiwatch-bench-logdirs")) as admin:
        for broker in admin.describe_log_dirs():
            for log_dir in broker["log_dirs"]:
                for topic in log_dir["topics"]:
                    if topic["name"] not in wanted:
                        continue
                    for p in topic["partitions"]:
                        key = (topic["name"], p["partition_index"])
                        sizes[key] = max(sizes.get(key, 0), p["partition_size"])
    result = dict.fromkeys(topics, 0)
    for (name, _), size in sizes.items():
        result[name] += size
    return result


def changelog_topics(topics: Topics) -> dict[str, str]:
    """Table name → its changelog topic."""
    return {table: topics.detector_changelog(table) for table in TABLES}
