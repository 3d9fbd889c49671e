"""``amiwatch ingest`` on a real broker: every valid reading framed exactly once, every bad message dead-lettered.

Two inputs: a hand-built raw stream (3 areas × 10 meters × 48 intervals in
all three raw shapes, with a gap, duplicates, a conflict, a late reading, a
late re-send of a whole upload, a multi-frame upload and one malformed
message per reason), and ``amiwatch simulate`` (3 areas × 10 meters × 1 day)
with its labels and its list of valid readings. Each is published, then
ingest runs as a subprocess with ``--exit-when-idle``. The output is checked
twice over:

* against the data itself: every valid (meter, ts) is in the frames (for the
  hand-built stream: as often as it was delivered after its frame closed,
  plus once), no frame id twice, no reading in two revision-0 frames, and
  the dead letters are exactly the malformed messages with their reasons;
* against the pure pipeline (:class:`PartitionProcessor` per partition, fed
  the same records read back from the raw topic): frame for frame, in order.

Then the same with ingest SIGKILLed (or SIGTERMed) mid-stream, at a moment
its committed checkpoints hold open frames, and restarted: identical output.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import os
import signal
import subprocess
import sys
import time
import urllib.request
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

import schemas
from amiwatch.kafka.clients import sync_consumer, sync_producer
from amiwatch.settings import Topics
from services.ingest.archive_view import ArchiveView
from services.ingest.normalise import format_time, parse_time
from services.ingest.partition import PartitionProcessor
from tests.conftest import free_ports

T0 = int(parse_time("2026-01-05T00:00:00Z"))
STEP = 900
INTERVALS = 48
METERS = 10
AREAS = ("A1", "A2", "A3")


def ts(k: int) -> str:
    return format_time(T0 + k * STEP)


def meters(area: str) -> list[str]:
    return [f"M{area[1:]}-{i:02d}" for i in range(1, METERS + 1)]


def energy(meter: str, k: int) -> float:
    return round(0.05 + zlib.crc32(f"{meter}|{k}".encode()) % 1000 / 2000, 3)


def item(meter: str, k: int, wh: bool = False, **extra: Any) -> dict[str, Any]:
    kwh = energy(meter, k)
    reading = {"meter_id": meter, "energy": kwh, "register_fwd": 1000 + k * kwh, "voltage": {"a": 230.0}}
    if wh:
        reading.update(energy=kwh * 1000, register_fwd=(1000 + k * kwh) * 1000)
    return {**reading, **extra}


@dataclass
class Stream:
    """Raw records to publish, what must come out of them, and the archive."""

    archive: list[tuple[str, bytes]] = field(default_factory=list)
    raw: list[tuple[str, bytes]] = field(default_factory=list)
    bad: Counter = field(default_factory=Counter)  # (original bytes, index, reason) -> count
    valid: Counter = field(default_factory=Counter)  # (meter, ts) -> times it must appear in frames

    def send(
        self, key: str, message: dict[str, Any] | bytes, *, readings: list[tuple[str, str]] = (), times: int = 1
    ) -> bytes:
        value = message if isinstance(message, bytes) else orjson.dumps(message)
        self.raw.append((key, value))
        for pair in readings:
            self.valid[pair] = max(self.valid[pair], times)
        return value


def build() -> Stream:
    s = Stream()
    for area in AREAS:
        a = area[1:]
        record = {
            "area_id": area,
            "updated_at": "2026-01-01T00:00:00Z",
            "concentrator_id": f"C{a}",
            "area_meter": {"meter_id": f"T{a}", "multiplier": 40, "rated_kva": 400},
            "meters": [
                {
                    "meter_id": m,
                    "customer_class": "residential",
                    "phases": 1,
                    "contracted_kva": 8,
                    "multiplier": 1,
                    "has_generation": False,
                    "status": "active",
                    "nominal_voltage_v": 220,
                    "basic_current_a": 5,
                    "max_current_a": 60,
                    "installed_at": "2025-03-01T00:00:00Z",
                }
                for m in meters(area)
            ],
        }
        s.archive.append((area, orjson.dumps(record)))

    def upload(area: str, k: int, items: list[dict[str, Any]], unit: str = "kWh") -> dict[str, Any]:
        a = area[1:]
        return {
            "kind": "concentrator_upload",
            "concentrator_id": f"C{a}",
            "area_id": area,
            "ts": ts(k),
            "interval_minutes": 15,
            "unit": unit,
            "area_meter": {"meter_id": f"T{a}", "energy": 40.0 + k, "register_fwd": 5000.0 + k},
            "readings": items,
        }

    def single(area: str, meter: str, k: int, kind: str = "meter_reading", **extra: Any) -> dict[str, Any]:
        return {"kind": kind, "area_id": area, "ts": ts(k), "interval_minutes": 15, **item(meter, k), **extra}

    late_a2: list[dict[str, Any]] = []
    for k in range(1, INTERVALS + 1):
        # A1: uploads; a gap at k=5; a re-send of the whole k=3 upload after it completed;
        # a negative and an unknown meter inside the k=9 upload (split).
        m1 = [m for m in meters("A1") if not (k == 5 and m.endswith("-10"))]
        items = [item(m, k) for m in m1]
        if k == 9:
            items.insert(3, item("M1-99", k))
            items.insert(5, item("M1-05", k, energy=-0.5))
        message = upload("A1", k, items)
        pairs = [(m, ts(k)) for m in [*m1, "T1"]]
        raw = s.send("A1", message, readings=pairs)
        if k == 9:
            s.bad[(raw, 3, "unknown_meter")] += 1
            s.bad[(raw, 5, "negative_energy")] += 1
        if k == 3:  # the frame went out complete at once: the identical re-send is dropped
            s.send("A1", message)
        # A2: one message per reading; a duplicate (k=4), a conflict (k=6), M2-07 of k=3 held back.
        for m in meters("A2"):
            if k == 3 and m == "M2-07":
                late_a2.append(single("A2", m, k))
                continue
            s.send("A2", single("A2", m, k), readings=[(m, ts(k))])
            if k == 4 and m == "M2-05":
                s.send("A2", single("A2", "M2-03", k))
            if k == 6 and m == "M2-06":
                s.send("A2", {**single("A2", "M2-04", k), "energy": 9.99})
        s.send("A2", single("A2", "T2", k, kind="area_meter_reading"), readings=[("T2", ts(k))])
        if k == 9:
            s.send("A2", late_a2.pop(), readings=[("M2-07", ts(3))])
        # A3: uploads in Wh; at k=10 one reading carries its own ts of k=9 for the meter k=9 lacked;
        # the last interval lacks a meter, so its frame closes only at the idle flush.
        m3 = [m for m in meters("A3") if not (k in (9, INTERVALS) and m.endswith("-02"))]
        items = [item(m, k, wh=True) for m in m3]
        pairs = [(m, ts(k)) for m in [*m3, "T3"]]
        if k == 10:
            items.append(item("M3-02", 9, wh=True, ts=ts(9)))
            pairs.append(("M3-02", ts(9)))
        s.send("A3", upload("A3", k, items, unit="Wh"), readings=pairs)

        # One malformed message per reason, spread over the stream.
        bad: dict[int, tuple[str, str, bytes | dict[str, Any]]] = {
            2: ("not_json", "A1", b'{"kind":"meter_reading","meter_id":"M1-01","area_id":"A1","energy":0.4'),
            3: ("nan", "A2", orjson.dumps(single("A2", "M2-01", 3, energy=12345.5)).replace(b"12345.5", b"NaN")),
            12: ("unknown_unit", "A3", single("A3", "M3-01", 12, unit="MWh")),
            14: ("misaligned_timestamp", "A1", {**single("A1", "M1-01", 14), "ts": format_time(T0 + 14 * STEP + 360)}),
            16: ("future_timestamp", "A2", single("A2", "M2-01", 16 + 96)),
            18: ("unknown_area", "A9", single("A9", "M9-01", 18)),
            20: ("schema", "A3", single("A3", "M3-01", 20, tariff="tou")),
            22: ("unknown_meter", "A2", single("A2", "M2-77", 22)),
        }
        if k in bad:
            reason, key, message = bad[k]
            s.bad[(s.send(key, message), None, reason)] += 1
    return s


# -- Kafka plumbing ---------------------------------------------------------------------------------


def publish(bootstrap: str, topics: Topics, stream: Stream) -> None:
    producer = sync_producer(bootstrap)
    for key, value in stream.archive:
        producer.send(topics.archive, key=key.encode(), value=value)
    for key, value in stream.raw:
        producer.send(topics.raw, key=key.encode(), value=value)
    producer.flush()
    producer.close()


def read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every committed record of ``topic``, partition by partition, in offset order."""
    consumer = sync_consumer(bootstrap_servers=bootstrap)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    end = consumer.end_offsets(partitions)
    records: list[Any] = []
    deadline = time.monotonic() + 30
    while any(consumer.position(tp) < end[tp] for tp in partitions):
        assert time.monotonic() < deadline, f"could not read {topic} to its end"
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    consumer.close()
    return sorted(records, key=lambda r: (r.partition, r.offset))


def amiwatch(env: dict[str, str], *argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "amiwatch.cli", *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def ingest(env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    return amiwatch(env, "ingest", "--metrics-port", "0", "--worker", "it", *extra)


def finish(process: subprocess.Popen[bytes], timeout: float = 75) -> str:
    """Wait for the process to exit 0; its output."""
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"{process.args[3]} did not exit:\n{output.decode(errors='replace')[-4000:]}")
    log = output.decode(errors="replace")
    assert process.returncode == 0, log[-4000:]
    return log


# -- expectations -----------------------------------------------------------------------------------


@dataclass
class Expected:
    """What ingest must make of a published input.

    ``valid``: (meter, ts) -> times it appears in frames (once each: identical
    re-sends are dropped); ``conflicting``: pairs re-sent with a different value,
    which may appear once more, in a correction frame, when the re-send came after
    their frame closed (evidence for ``duplicate_data``, never dropped).
    ``check_letters`` asserts on the dead letters.
    """

    valid: Counter
    conflicting: set[tuple[str, str]]
    check_letters: Callable[[list[dict[str, Any]]], None]
    closed_by: set[str]
    dead_letters: int


def hand_built(bootstrap: str, topics: Topics, env: dict[str, str], tmp_path: Path) -> Expected:
    stream = build()
    publish(bootstrap, topics, stream)

    def check_letters(letters: list[dict[str, Any]]) -> None:
        assert Counter((base64.b64decode(d["original"]), d["index"], d["reason"]) for d in letters) == stream.bad

    return Expected(stream.valid, set(), check_letters, {"complete", "grace", "late", "idle"}, sum(stream.bad.values()))


def simulated(bootstrap: str, topics: Topics, env: dict[str, str], tmp_path: Path) -> Expected:
    labels, out = tmp_path / "labels.jsonl", tmp_path / "sim"
    finish(
        amiwatch(
            env,
            *("simulate", "--areas", "3", "--meters-per-area", "10", "--days", "1", "--seed", "1"),
            *("--labels", str(labels), "--summary", str(tmp_path / "summary.json"), "--out-dir", str(out)),
        ),
        timeout=60,
    )
    with (out / "readings.csv").open() as rows:
        valid = Counter((row["meter_id"], row["ts"]) for row in csv.DictReader(rows))
    all_labels = [orjson.loads(line) for line in labels.read_text().splitlines()]
    malformed = [label for label in all_labels if label["kind"] == "malformed"]
    conflicting = {(label["subject_id"], label["start"]) for label in all_labels if label["type"] == "duplicate_data"}
    assert malformed, "the simulator made no malformed messages"

    def matches(letter: dict[str, Any], label: dict[str, Any]) -> bool:
        params = label["params"]
        text = base64.b64decode(letter["original"]).decode(errors="replace")
        return letter["reason"] == label["type"] and (
            params["message_ref"] in text or (letter["meter_id"] == params.get("meter_id") and params["ts"] in text)
        )

    def check_letters(letters: list[dict[str, Any]]) -> None:
        pairs = [(label["label_id"], [i for i, d in enumerate(letters) if matches(d, label)]) for label in malformed]
        assert [(label, found) for label, found in pairs if len(found) != 1] == []
        assert sorted(found[0] for _, found in pairs) == list(range(len(letters))), "dead letters without a label"

    return Expected(valid, conflicting, check_letters, {"complete", "grace"}, len(malformed))


def model(bootstrap: str, topics: Topics) -> tuple[dict[int, list[dict]], list[tuple]]:
    """What the pure pipeline makes of the raw records as they sit in the topic (frames per partition, dead letters)."""
    archive = ArchiveView()
    for record in read_all(bootstrap, topics.archive):
        archive.apply(record.key, record.value)
    processors: dict[int, PartitionProcessor] = {}
    frames: dict[int, list[dict]] = {}
    letters: list[tuple] = []
    for record in read_all(bootstrap, topics.raw):
        processor = processors.setdefault(record.partition, PartitionProcessor(record.partition, archive))
        outcome = processor.process(record)
        frames.setdefault(record.partition, []).extend(outcome.frames)
        letters += [_letter(d) for d in outcome.dead_letters]
    for p, processor in processors.items():
        frames[p].extend(processor.flush())
    return frames, sorted(letters)


def _letter(letter: dict[str, Any]) -> tuple:
    origin = letter["origin"]
    return (
        origin["partition"],
        origin["offset"],
        letter["index"] if letter["index"] is not None else -1,
        letter["reason"],
        letter["message"],
    )


def check(bootstrap: str, topics: Topics, expected: Expected) -> None:
    frame_records = read_all(bootstrap, topics.frames)
    frames = [orjson.loads(r.value) for r in frame_records]
    validator = schemas.validator("area_frame")
    for record, frame in zip(frame_records, frames, strict=True):
        validator.validate(frame)
        assert record.key.decode() == frame["area_id"]
        assert len({len(column) for column in frame["meters"].values()}) == 1

    # Exactly once, from the data alone.
    assert len({f["frame_id"] for f in frames}) == len(frames), "a frame was emitted twice"
    seen: Counter = Counter()
    first: Counter = Counter()
    for f in frames:
        pairs = [(m, f["ts"]) for m in f["meters"]["meter_id"]]
        if f["area_meter"] is not None:
            pairs.append((f["area_meter"]["meter_id"], f["ts"]))
        seen.update(pairs)
        if f["revision"] == 0:
            first.update(pairs)
    assert max(first.values()) == 1, "a reading is in two revision-0 frames"
    assert set(seen) == set(expected.valid)
    repeated = seen - expected.valid
    assert set(repeated) <= expected.conflicting and max(repeated.values(), default=1) == 1, repeated
    assert expected.closed_by <= {f["closed_by"] for f in frames}

    letter_records = read_all(bootstrap, topics.dlq)
    letters = [orjson.loads(r.value) for r in letter_records]
    for letter in letters:
        schemas.validator("dead_letter").validate(letter)
    expected.check_letters(letters)

    # Frame for frame what the pure pipeline makes of the same records.
    expected_frames, expected_letters = model(bootstrap, topics)
    by_partition: dict[int, list[dict]] = {}
    for record, frame in zip(frame_records, frames, strict=True):
        by_partition.setdefault(record.partition, []).append(frame)
    assert by_partition == {p: f for p, f in expected_frames.items() if f}
    assert sorted(_letter(d) for d in letters) == expected_letters


# -- the tests --------------------------------------------------------------------------------------

SOURCES = {"hand_built": hand_built, "simulated": simulated}


@pytest.fixture(params=sorted(SOURCES))
def published(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    kafka_topics: Topics,
    kafka_env: dict[str, str],
    tmp_path: Path,
) -> Expected:
    """The input published to this test's topics, and what ingest must make of it."""
    return SOURCES[request.param](kafka_bootstrap, kafka_topics, kafka_env, tmp_path)


def rejected_by_metrics(port: int) -> float:
    """``amiwatch_ingest_readings_total{result="rejected"}`` summed over reasons, from ingest's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "amiwatch_ingest_readings"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("result") == "rejected"
    )


def test_ingest_frames_every_valid_reading_once_and_dead_letters_the_rest(
    published: Expected, kafka_bootstrap: str, kafka_topics: Topics, kafka_env: dict[str, str]
) -> None:
    (port,) = free_ports(1)
    started = time.monotonic()
    process = ingest(kafka_env, "--exit-when-idle", "5", "--metrics-port", str(port))
    rejected = 0.0
    while process.poll() is None and rejected < published.dead_letters:
        with contextlib.suppress(OSError):
            rejected = rejected_by_metrics(port)
        time.sleep(0.2)
    finish(process)
    elapsed = time.monotonic() - started
    assert rejected == published.dead_letters, "/metrics did not count the dead letters"
    check(kafka_bootstrap, kafka_topics, published)
    print(f"ingest: {sum(published.valid.values())} readings in {elapsed:.1f} s, 5 s of it the idle wait")


def open_checkpoints(bootstrap: str, topics: Topics) -> list[str]:
    """Keys of the latest committed checkpoint heads that hold open offsets (a restart must replay them)."""
    latest = {r.key: orjson.loads(r.value) for r in read_all(bootstrap, topics.ingest_checkpoints)}
    heads = {key: value for key, value in latest.items() if "committed" in value}  # not the area records
    return sorted(key.decode() for key, head in heads.items() if head["open"])


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_ingest_stopped_mid_stream_and_restarted_gives_the_same_output(
    sig: signal.Signals, published: Expected, kafka_bootstrap: str, kafka_topics: Topics, kafka_env: dict[str, str]
) -> None:
    """Stopped mid-stream (transactions of 3 records) and restarted.

    Once 20 frames are out, ingest is frozen (SIGSTOP) until its committed
    checkpoints hold open frames, then sent ``sig``. SIGKILL leaves a
    transaction open (the restart fences and aborts it) and the frozen
    checkpoints stand; SIGTERM finishes the batch in flight and exits 0.
    Either way a restart replays exactly what the last checkpoints hold open.
    """
    first = ingest(kafka_env, "--max-batch", "3")
    frames = sync_consumer(kafka_topics.frames, bootstrap_servers=kafka_bootstrap)
    deadline = time.monotonic() + 45
    committed = 0
    while True:
        assert first.poll() is None, "ingest exited before it could be stopped"
        assert time.monotonic() < deadline, "no checkpoint with open frames was committed in time"
        committed += sum(len(batch) for batch in frames.poll(timeout_ms=50).values())
        if committed < 20:
            continue
        os.kill(first.pid, signal.SIGSTOP)
        if open_checkpoints(kafka_bootstrap, kafka_topics):
            break
        os.kill(first.pid, signal.SIGCONT)
    frames.close()
    os.kill(first.pid, sig)
    os.kill(first.pid, signal.SIGCONT)
    output, _ = first.communicate(timeout=30)
    assert first.returncode == (0 if sig == signal.SIGTERM else -signal.SIGKILL), output.decode(errors="replace")[
        -3000:
    ]
    to_replay = open_checkpoints(kafka_bootstrap, kafka_topics)
    at_stop = len(read_all(kafka_bootstrap, kafka_topics.frames))
    log = finish(ingest(kafka_env, "--exit-when-idle", "5"))
    total = len(read_all(kafka_bootstrap, kafka_topics.frames))
    print(f"stopped with {at_stop} of {total} frames committed, open checkpoints {to_replay}; the restart:\n{log}")
    assert at_stop < total, "the stop came after the end of the stream"
    assert ("replaying" in log) == bool(to_replay)
    if sig == signal.SIGKILL:
        assert to_replay
    check(kafka_bootstrap, kafka_topics, published)
