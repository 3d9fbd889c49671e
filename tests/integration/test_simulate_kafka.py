"""``amiwatch simulate`` against the real broker: what a plain consumer reads is what the summary says.

Runs the must-show command as a subprocess on this test's topics, then
reads the raw, archive and labels topics with a bare kafka-python
consumer and recounts everything from the message values alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from amiwatch.settings import REPO_ROOT, Topics
from simulators.recount import mismatches, recount

pytestmark = pytest.mark.kafka


def _read_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0) -> list[tuple[bytes | None, bytes]]:
    """Every (key, value) of ``topic``, reading until ``expected`` records or the end offsets are reached."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records: list[tuple[bytes | None, bytes]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend((r.key, r.value) for r in batch)
            if len(records) >= expected and all(consumer.position(tp) >= end[tp] for tp in partitions):
                break
        return records
    finally:
        consumer.close()


def test_must_show_run_lands_on_kafka_exactly_as_summarised(
    kafka_env: dict[str, str], kafka_topics: Topics, kafka_bootstrap: str, tmp_path: Path
) -> None:
    labels_path, summary_path = tmp_path / "labels.jsonl", tmp_path / "summary.json"
    cmd = [sys.executable, "-m", "amiwatch.cli", "simulate", "--areas", "5", "--meters-per-area", "40", "--days", "2",
           "--seed", "7", "--labels", str(labels_path), "--summary", str(summary_path), "--no-progress"]
    done = subprocess.run(cmd, env=kafka_env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(summary_path.read_text())
    labels = [json.loads(line) for line in labels_path.read_text().splitlines()]
    assert summary["delivery_failures"] == 0

    raw = _read_all(kafka_bootstrap, kafka_topics.raw, summary["messages"]["total"])
    counts = recount((value for _key, value in raw), labels)
    assert mismatches(summary, counts) == []
    assert counts["messages"]["total"] == summary["messages"]["total"]

    # Keyed by area: every parseable message's key is its area id.
    for key, value in raw:
        try:
            msg = json.loads(value)
        except ValueError:
            continue
        assert key is not None and key.decode() == msg["area_id"]

    # Every malformed label's ref (or meter and time) is really in the stream.
    malformed = Counter(lab["type"] for lab in labels if lab["kind"] == "malformed")
    assert dict(malformed) == summary["malformed"]["by_reason"]
    assert counts["malformed_items"] == summary["malformed"]["items"]

    archives = _read_all(kafka_bootstrap, kafka_topics.archive, summary["archives"])
    assert len(archives) == summary["archives"]
    areas = {f"A000{i}" for i in range(1, 6)}
    assert {k.decode() for k, _v in archives} == {json.loads(v)["area_id"] for _k, v in archives} == areas
    published_labels = _read_all(kafka_bootstrap, kafka_topics.labels, len(labels))
    assert sorted(json.loads(v)["label_id"] for _k, v in published_labels) == sorted(lab["label_id"] for lab in labels)
