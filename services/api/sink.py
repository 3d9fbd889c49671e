"""The alert sink: ``ami.alerts`` → the store, at least once, applied idempotently.

Where state lives and what a restart replays:

- The consumer (group ``<prefix>api-sink``, ``read_committed``, no auto-commit)
  polls a batch, validates every record against ``schemas/alert.json`` and
  applies the valid ones in ONE database transaction
  (:func:`services.api.store.alerts.apply_stream`). Only after that commit are
  the batch's offsets committed to Kafka.
- A crash (SIGKILL) before the database commit loses nothing: the offsets
  were not committed, the batch is polled again. A crash between the two
  commits replays a batch that is already stored: the store skips records at
  or below each alert's stored offset, so nothing is applied twice, no
  sequence number moves, no audit entry repeats.
- Replaying the whole topic (a new group, or offsets reset to the beginning)
  is the same case at scale: nothing changes.
- A record that is not valid JSON or breaks the contract cannot ever be
  applied: it is logged, counted (``result="invalid"``) and skipped, never
  allowed to block the partition.

The same loop (:class:`Projection`) feeds the readings context
(:class:`ContextSink`: ``ami.archive`` and ``ami.frames`` → archives and daily
energy, :mod:`services.api.store.context`), under its own group, with the
same commit order and the same idempotence (an interval is counted once).

Both run inside ``amiwatch api serve`` (background tasks) and alone as
``amiwatch api sink [--exit-when-idle S]``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

import schemas
from amiwatch.kafka.clients import aio_consumer
from services.api.core.config import ApiConfig
from services.api.metrics import ApiMetrics
from services.api.store import context
from services.api.store.alerts import ApplyStats, StreamRecord, apply_stream
from services.api.store.session import Store

__all__ = ["Projection", "AlertSink", "ContextSink", "parse_record", "parse_json"]

log = logging.getLogger(__name__)


def parse_json(raw: bytes | None, schema: str) -> dict[str, Any] | str:
    """The record in ``raw`` if it is valid JSON that ``schemas/<schema>.json`` accepts, else why not."""
    if raw is None:
        return "empty value"
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return f"not JSON: {exc}"
    error = next(iter(schemas.validator(schema).iter_errors(value)), None)
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "record"
        return f"{where}: {error.message}"
    return value


def parse_record(raw: bytes | None) -> dict[str, Any] | str:
    """The alert record in ``raw``, or a short reason why it is not one."""
    return parse_json(raw, "alert")


class Projection:
    """Consume topics into the store: poll a batch, apply it in one transaction, then commit offsets.

    Subclasses say which topics and group (:meth:`topics`, :meth:`group`), how to
    decode a record (:meth:`decode`) and how to apply a batch (:meth:`apply`,
    idempotently: a batch may come again after a crash).
    """

    name = "projection"

    def __init__(
        self,
        store: Store,
        config: ApiConfig,
        metrics: ApiMetrics | None = None,
        *,
        exit_when_idle: float | None = None,
        max_batch: int = 500,
    ) -> None:
        self.store = store
        self.config = config
        self.metrics = metrics or ApiMetrics()
        self.exit_when_idle = exit_when_idle
        self.max_batch = max_batch
        self._stop = asyncio.Event()
        self.running = False

    def topics(self) -> list[str]:
        raise NotImplementedError

    def group(self) -> str:
        raise NotImplementedError

    def decode(self, tp: TopicPartition, message: ConsumerRecord) -> Any | str:
        raise NotImplementedError

    def apply(self, records: list[Any]) -> None:
        raise NotImplementedError

    def gauge_lag(self, lag: int) -> None:
        pass

    def stop(self) -> None:
        """Finish the current batch (apply and commit), then return from :meth:`run`."""
        self._stop.set()

    async def run(self) -> int:
        consumer = aio_consumer(
            *self.topics(),
            bootstrap_servers=self.config.bootstrap_servers,
            group_id=self.group(),
            client_id=f"amiwatch-api-{self.name}",
            max_poll_records=self.max_batch,
        )
        await consumer.start()
        self.running = True
        log.info("%s: consuming %s as group %s", self.name, ", ".join(self.topics()), self.group())
        last_input = time.monotonic()
        try:
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=self.max_batch)
                if any(batches.values()):
                    await self._handle(consumer, batches)
                    last_input = time.monotonic()
                    await self._lag(consumer)
                    continue
                at_end = await self._lag(consumer)
                if self.exit_when_idle is not None and at_end and time.monotonic() - last_input >= self.exit_when_idle:
                    log.info("%s: idle for %.1f s at the end of every partition, exiting", self.name, self.exit_when_idle)
                    return 0
        finally:
            self.running = False
            await consumer.stop()
        return 0

    async def _handle(self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        records: list[Any] = []
        invalid = 0
        for tp, messages in batches.items():
            for m in messages:
                value = self.decode(tp, m)
                if isinstance(value, str):
                    invalid += 1
                    log.warning("%s: skipping %s[%d]@%d: %s", self.name, tp.topic, tp.partition, m.offset, value)
                    continue
                records.append(value)
        if records:
            await asyncio.to_thread(self.apply, records)
        self.invalid(invalid)
        offsets = {tp: messages[-1].offset + 1 for tp, messages in batches.items() if messages}
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # The group moved on (rebalance): whoever owns these partitions now replays them,
            # which the store makes harmless.
            log.warning("%s: offset commit failed (%s); the batch will be replayed", self.name, exc)

    def invalid(self, n: int) -> None:
        pass

    async def _lag(self, consumer: AIOKafkaConsumer) -> bool:
        """Report the lag; True when every assigned partition is consumed to its end."""
        assignment = sorted(consumer.assignment())
        if not assignment:
            return False
        try:
            ends = await consumer.end_offsets(assignment)
        except KafkaError:
            return False
        lag = 0
        for tp in assignment:
            lag += max(0, ends[tp] - await consumer.position(tp))
        self.gauge_lag(lag)
        return lag == 0


class AlertSink(Projection):
    """``ami.alerts`` → ``alerts`` (see the module doc)."""

    name = "alert-sink"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.applied = ApplyStats()

    def topics(self) -> list[str]:
        return [self.config.topics.alerts]

    def group(self) -> str:
        return self.config.sink_group

    def decode(self, tp: TopicPartition, message: ConsumerRecord) -> StreamRecord | str:
        value = parse_record(message.value)
        return value if isinstance(value, str) else StreamRecord(value, tp.partition, message.offset)

    def apply(self, records: list[StreamRecord]) -> None:
        started = time.perf_counter()
        with self.store.write() as session:
            stats = apply_stream(session, records)
        m = self.metrics
        for name in ("opened", "changed", "unchanged", "replayed"):
            m.sink_records.labels(name).inc(getattr(stats, name))
            setattr(self.applied, name, getattr(self.applied, name) + getattr(stats, name))
        m.sink_batch_seconds.observe(time.perf_counter() - started)

    def invalid(self, n: int) -> None:
        self.metrics.sink_records.labels("invalid").inc(n)

    def gauge_lag(self, lag: int) -> None:
        self.metrics.sink_lag.set(lag)


class ContextSink(Projection):
    """``ami.archive`` and ``ami.frames`` → archives and daily energy (:mod:`services.api.store.context`)."""

    name = "context-sink"

    def topics(self) -> list[str]:
        return [self.config.topics.archive, self.config.topics.frames]

    def group(self) -> str:
        return f"{self.config.sink_group}-context"

    def decode(self, tp: TopicPartition, message: ConsumerRecord) -> tuple[str, dict[str, Any]] | str:
        if tp.topic == self.config.topics.archive:
            checked = parse_json(message.value, "area_archive")
            return checked if isinstance(checked, str) else ("archive", checked)
        # Frames come from ingest, which validated them; a full schema check per frame would cost
        # more than the projection itself, so only the fields used are checked.
        try:
            value = orjson.loads(message.value) if message.value is not None else None
        except orjson.JSONDecodeError as exc:
            return f"not JSON: {exc}"
        if not isinstance(value, dict) or not {"area_id", "ts", "interval_minutes", "meters", "area_meter"} <= value.keys():
            return "not an area frame"
        return ("frame", value)

    def apply(self, records: list[tuple[str, dict[str, Any]]]) -> None:
        """Apply the batch in transactions of about ``context_cells_per_transaction`` meters each.

        The alert sink writes to the same database, and its alerts are what users wait for: short
        transactions here let it in between. A crash part-way replays the whole batch, which counts
        nothing twice (see :mod:`services.api.store.context`).
        """
        for chunk in _chunks(records, self.config.context_cells_per_transaction):
            with self.store.write() as session:
                for kind, value in chunk:
                    if kind == "archive":
                        context.apply_archive(session, value)
                frames = [v for k, v in chunk if k == "frame"]
                if frames:
                    context.apply_frames(session, frames)


def _chunks(records: list[tuple[str, dict[str, Any]]], cells: int) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Consecutive runs of ``records`` holding at most ``cells`` meters each (one record alone may hold more)."""
    chunk: list[tuple[str, dict[str, Any]]] = []
    held = 0
    for kind, value in records:
        size = len(value["meters"]["meter_id"]) if kind == "frame" else len(value["meters"])
        if chunk and held + size > cells:
            yield chunk
            chunk, held = [], 0
        chunk.append((kind, value))
        held += size
    if chunk:
        yield chunk
