"""Where a run goes: Kafka topics, JSON-lines files, or both.

Kafka: one kafka-python producer (the project's defaults: acks=all,
idempotent, lz4 when the codec is installed, else gzip), keyed by area id
for raw and archive records and by subject id for labels, batched with a
short linger. Every send's failure is counted; ``close`` flushes and
returns the count so the command exits non-zero instead of losing data.

Files (``--out-dir``): ``archive.jsonl``, ``raw.jsonl`` (message values,
one per line, in delivery order), ``labels.jsonl``, ``readings.csv`` and
``events.csv``, for backtests without Kafka (``amiwatch backtest
--readings readings.csv --events events.csv --archive archive.jsonl``
gives the stream's alerts). ``readings.csv`` (``CSV_HEADER``: meter_id,
area_id, ts, then every column ingest normalises, in
``services.ingest.normalise.COLUMNS`` order) holds every valid reading
once, with exactly the values ingest derives from its raw message (kWh;
empty where the message has no such field), in generation order, area
meter rows included with the area meter's id; a conflicting re-send is
a second row of the same meter and ts with the re-sent values, as a
head-end export with duplicates holds it. ``events.csv`` (``EVENTS_HEADER``)
lists the meter events of the delivered readings. Files
are written by a background thread in multi-megabyte chunks: the
standard scenario writes ~8 GB, and a write that waits for the disk
would otherwise stall generation (the write releases the GIL).
"""

from __future__ import annotations

import queue
import sys
import threading
from pathlib import Path
from typing import Any

from kafka.codec import has_lz4

from amiwatch.kafka.clients import sync_producer
from amiwatch.settings import Settings
from simulators.messages import CSV_COLUMNS, EVENTS_COLUMNS

__all__ = ["KafkaSink", "FileSink", "LabelFileSink", "MultiSink", "CSV_HEADER", "EVENTS_HEADER"]

CSV_HEADER = ",".join(CSV_COLUMNS) + "\n"
EVENTS_HEADER = ",".join(EVENTS_COLUMNS) + "\n"
_CHUNK = 8 << 20


class KafkaSink:
    """Raw readings, archives and labels to the settings' topics."""

    wants_csv = False

    def __init__(self, settings: Settings) -> None:
        self.topics = settings.topics
        self.failures = 0
        self.first_error: str | None = None
        self.producer = sync_producer(
            settings.bootstrap_servers,
            compression_type="lz4" if has_lz4() else "gzip",
            linger_ms=20,
            batch_size=512 * 1024,
            max_request_size=8 * 1024 * 1024,
        )

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self.first_error is None:
            self.first_error = repr(exc)

    def _send(self, topic: str, key: str, value: bytes) -> None:
        self.producer.send(topic, key=key.encode(), value=value).add_errback(self._failed)

    def archive(self, key: str, value: bytes) -> None:
        self._send(self.topics.archive, key, value)

    def label(self, key: str, value: bytes) -> None:
        self._send(self.topics.labels, key, value)

    def raw(self, key: str, value: bytes) -> None:
        self._send(self.topics.raw, key, value)

    def csv(self, text: str) -> None:
        raise NotImplementedError("Kafka takes no CSV")

    def events(self, text: str) -> None:
        raise NotImplementedError("Kafka takes no CSV")

    def barrier(self) -> None:
        """Wait until everything sent so far is acknowledged (archives before readings)."""
        self.producer.flush()

    def close(self) -> int:
        try:
            self.producer.flush(timeout=120)
        except Exception as exc:  # a timeout leaves records unsent: count it, never hide it
            self._failed(exc)
        finally:
            self.producer.close(timeout=10)
        if self.failures:
            print(f"kafka: {self.failures} records failed, first: {self.first_error}", file=sys.stderr)
        return self.failures


class _ChunkedFile:
    """A binary file written in large chunks by a thread of its own."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("wb")
        self._parts: list[bytes] = []
        self._size = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name=f"write-{path.name}", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._file.write(chunk)
                except BaseException as exc:  # surfaced by close()
                    self._error = exc

    def write(self, data: bytes) -> None:
        self._parts.append(data)
        self._size += len(data)
        if self._size >= _CHUNK:
            self._queue.put(b"".join(self._parts))
            self._parts, self._size = [], 0

    def close(self) -> None:
        if self._parts:
            self._queue.put(b"".join(self._parts))
            self._parts = []
        self._queue.put(None)
        self._thread.join()
        self._file.close()
        if self._error is not None:
            raise self._error


class LabelFileSink:
    """Only the labels, as JSON lines (``--labels PATH``)."""

    wants_csv = False

    def __init__(self, path: Path) -> None:
        self._labels = _ChunkedFile(path)

    def archive(self, key: str, value: bytes) -> None:
        pass

    def label(self, key: str, value: bytes) -> None:
        self._labels.write(value + b"\n")

    def raw(self, key: str, value: bytes) -> None:
        pass

    def csv(self, text: str) -> None:
        pass

    def events(self, text: str) -> None:
        pass

    def barrier(self) -> None:
        pass

    def close(self) -> int:
        self._labels.close()
        return 0


class FileSink(LabelFileSink):
    """Every stream to files in ``out_dir``."""

    wants_csv = True

    def __init__(self, out_dir: Path) -> None:
        super().__init__(out_dir / "labels.jsonl")
        self._archive = _ChunkedFile(out_dir / "archive.jsonl")
        self._raw = _ChunkedFile(out_dir / "raw.jsonl")
        self._csv = _ChunkedFile(out_dir / "readings.csv")
        self._csv.write(CSV_HEADER.encode())
        self._events = _ChunkedFile(out_dir / "events.csv")
        self._events.write(EVENTS_HEADER.encode())

    def archive(self, key: str, value: bytes) -> None:
        self._archive.write(value + b"\n")

    def raw(self, key: str, value: bytes) -> None:
        self._raw.write(value + b"\n")

    def csv(self, text: str) -> None:
        self._csv.write(text.encode())

    def events(self, text: str) -> None:
        self._events.write(text.encode())

    def close(self) -> int:
        for stream in (self._archive, self._raw, self._csv, self._events):
            stream.close()
        return super().close()


class MultiSink:
    """Fans every record out to several sinks."""

    def __init__(self, sinks: list[Any]) -> None:
        self.sinks = sinks
        self.wants_csv = any(s.wants_csv for s in sinks)
        self._csv_sinks = [s for s in sinks if s.wants_csv]

    def archive(self, key: str, value: bytes) -> None:
        for s in self.sinks:
            s.archive(key, value)

    def label(self, key: str, value: bytes) -> None:
        for s in self.sinks:
            s.label(key, value)

    def raw(self, key: str, value: bytes) -> None:
        for s in self.sinks:
            s.raw(key, value)

    def csv(self, text: str) -> None:
        for s in self._csv_sinks:
            s.csv(text)

    def events(self, text: str) -> None:
        for s in self._csv_sinks:
            s.events(text)

    def barrier(self) -> None:
        for s in self.sinks:
            s.barrier()

    def close(self) -> int:
        return sum(s.close() for s in self.sinks)
