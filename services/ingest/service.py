"""The ingest service: raw records in, frames and dead letters out, exactly once, through Kafka transactions.

Topology (names from :class:`amiwatch.settings.Topics`)::

    archive (compacted) ──► ArchiveView          (read to its end first, then followed)
    raw ──► PartitionProcessor per input partition ──► frames      (same partition number as the input)
                                                   ├─► readings.dlq (key: area id)
                                                   └─► ingest.checkpoints (compacted, key: group|partition[|area])

Exactly once: the consumer (group ``--group``, ``read_committed``, no
auto-commit) and a transactional producer (``transactional_id`` =
``amiwatch-ingest.<group>.<worker>``). Each poll batch (bounded by
``max_batch_messages`` and ``max_batch_seconds``) is judged, then its frames,
dead letters, one checkpoint per input partition it touched and the
group's offsets (``send_offsets_to_transaction``) are committed in ONE
transaction. Consumers of frames and dead letters read ``read_committed``,
so they see a batch's output entirely or not at all, together with the
state that produced it (see :mod:`services.ingest.checkpoint` for what a
restart replays).

One transaction is in flight while the next batch is judged: judging is
CPU, a commit is mostly waiting for the broker (produce acks, the offsets,
the commit markers), so the two overlap. The next batch's transaction
begins only after the previous one has committed, and its output was
judged from the state that one committed; if the previous one aborts,
the next batch is dropped unsent with the rest of the state (below).

Where state lives: in the processors, in memory, between commits. Anything
that makes the memory disagree with the last commit (an aborted
transaction, a rebalance) throws the processors away and rebuilds them from
the committed checkpoints. Starting the producer with the same
``transactional_id`` fences a previous incarnation of this worker and aborts
its open transaction, so a SIGKILLed worker's half-done batch never shows.
All of this runs under one lock: the rebalance callbacks wait for the batch
in flight to commit, so a revoked partition's last word is always committed.
Fencing is by worker name only: aiokafka's TxnOffsetCommit (v0) carries no
group generation (no KIP-447), so a worker that hangs past its session
timeout, loses its partitions and wakes up could still commit one stale
transaction. Give every worker a stable, unique ``--worker``.

Frames keep their area's partition: a frame goes to the frames partition
with the number of the raw partition it came from (raw and frames have the
same partition count and the same key), so an area's frames and its
detector state stay together. Each frame carries its position among its
partition's frames of the transaction (header ``amiwatch-txn``, see
:mod:`amiwatch.kafka.transaction_position`).

Idle and shutdown: once every assigned partition has been at its end for
``--idle-flush`` seconds, open frames are closed as ``idle`` (their
stragglers, if any, become corrections). ``--exit-when-idle S`` does the
same after S seconds and then exits 0. SIGTERM/SIGINT finish the batch in
flight and exit 0, leaving open frames to the checkpoint: the next start
continues them, invisibly downstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced

from amiwatch.kafka.clients import aio_consumer, aio_producer
from amiwatch.kafka.transaction_position import position_headers
from amiwatch.settings import Topics
from services.ingest import metrics
from services.ingest.archive_view import ArchiveView, follow_archive
from services.ingest.checkpoint import Checkpoint, load_checkpoints
from services.ingest.partition import Outcome, PartitionProcessor

__all__ = ["IngestConfig", "IngestService", "transactional_id"]

log = logging.getLogger(__name__)

_YIELD_EVERY = 64
"""Records judged between yields to the event loop, which lets the transaction in flight move on."""


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """What one ingest worker needs; the CLI fills it from flags and settings."""

    bootstrap_servers: str
    topics: Topics
    group: str
    worker: str
    grace_intervals: int = 2
    stale_s: int = 6 * 3600
    horizon_s: int = 7 * 86_400
    exit_when_idle: float | None = None
    idle_flush_s: float | None = None
    max_batch_messages: int = 2000
    max_batch_seconds: float = 0.1


def transactional_id(group: str, worker: str) -> str:
    """Stable per (group, worker): a restarted worker fences its previous incarnation."""
    return f"amiwatch-ingest.{group}.{worker}"


class _Pending:
    """One batch's output and tallies, sent and counted only if its transaction commits."""

    __slots__ = ("records", "frames", "messages", "accepted", "rejected", "replayed", "late_duplicates", "partitions")

    def __init__(self) -> None:
        self.records: list[tuple[str, int | None, bytes | None, bytes, Any]] = []
        self.frames: list[dict[str, Any]] = []
        self.messages: dict[str, int] = {}
        self.accepted = 0
        self.rejected: dict[str, int] = {}
        self.replayed = 0
        self.late_duplicates = 0
        self.partitions: set[int] = set()

    def add_frames(self, topic: str, partition: int, frames: list[dict[str, Any]]) -> None:
        for frame in frames:
            self.records.append((topic, partition, frame["area_id"].encode(), orjson.dumps(frame), None))
            self.frames.append(frame)

    def add(self, topics: Topics, record: ConsumerRecord, outcome: Outcome) -> None:
        self.add_frames(topics.frames, record.partition, outcome.frames)
        if outcome.replayed:
            self.replayed += 1
            return
        for letter in outcome.dead_letters:
            key = letter["area_id"].encode() if letter["area_id"] is not None else None
            self.records.append((topics.dlq, None, key, orjson.dumps(letter), list(record.headers or ())))
        self.messages[outcome.kind] = self.messages.get(outcome.kind, 0) + 1
        self.accepted += outcome.accepted
        self.late_duplicates += outcome.late_duplicates
        for rejection in outcome.rejections:
            self.rejected[rejection.reason] = self.rejected.get(rejection.reason, 0) + 1

    def count(self) -> None:
        for kind, n in self.messages.items():
            metrics.MESSAGES.labels(kind).inc(n)
        if self.accepted:
            metrics.READINGS.labels("accepted", "none").inc(self.accepted)
        for reason, n in self.rejected.items():
            metrics.READINGS.labels("rejected", reason).inc(n)
        if self.replayed:
            metrics.REPLAYED.inc(self.replayed)
        metrics.DUPLICATES.inc(self.late_duplicates)
        for frame in self.frames:
            metrics.count_frame(frame)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, service: IngestService) -> None:
        self._service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._service.revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._service.assigned(assigned)


class IngestService:
    """One ingest worker (see the module docstring)."""

    __slots__ = (
        "config",
        "archive",
        "_processors",
        "_lock",
        "_generation",
        "_stopping",
        "_last_input",
        "_joined",
        "_producer",
        "_consumer",
        "_checkpoint_reader",
        "_checkpoint_partitions",
        "_next",
        "_follower",
        "_in_flight",
    )

    def __init__(self, config: IngestConfig) -> None:
        self.config = config
        self.archive = ArchiveView()
        metrics.ARCHIVE_AREAS.set_function(lambda: len(self.archive))
        metrics.ARCHIVE_IGNORED.set_function(lambda: self.archive.malformed)
        self._processors: dict[int, PartitionProcessor] = {}
        self._lock = asyncio.Lock()
        self._generation = 0
        self._stopping = False
        self._last_input = time.monotonic()
        self._joined = False  # the group gave us an assignment (maybe empty): idleness means something
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._checkpoint_reader: AIOKafkaConsumer | None = None
        self._checkpoint_partitions: list[TopicPartition] = []
        self._next: dict[int, int] = {}  # per assigned partition: the offset its processor takes next
        self._follower: asyncio.Task[None] | None = None  # follows the archive topic
        self._in_flight: asyncio.Task[bool] | None = None  # the last batch's transaction, committing

    def stop(self) -> None:
        """Finish the batch in flight, then return from :meth:`run` (signal handlers call this)."""
        self._stopping = True

    # -- partitions ------------------------------------------------------------------

    async def _partitions(self, topic: str) -> list[TopicPartition]:
        """Every partition of ``topic``, waiting for its metadata (topics are made by ``amiwatch topics create``)."""
        assert self._producer is not None
        return [TopicPartition(topic, p) for p in sorted(await self._producer.partitions_for(topic))]

    async def _restore(self, partitions: list[int]) -> None:
        """(Re)build the processors of ``partitions`` from their committed checkpoints and seek to c."""
        assert self._consumer is not None and self._checkpoint_reader is not None
        self._generation += 1
        checkpoints = await load_checkpoints(
            self._checkpoint_reader, self.config.group, self._checkpoint_partitions, partitions
        )
        for p in partitions:
            checkpoint = checkpoints.get(p)
            self._processors[p] = PartitionProcessor(
                p,
                self.archive,
                checkpoint=checkpoint,
                grace_intervals=self.config.grace_intervals,
                stale_s=self.config.stale_s,
                horizon_s=self.config.horizon_s,
            )
            tp = TopicPartition(self.config.topics.raw, p)
            offset = checkpoint.committed if checkpoint is not None else await self._consumer.committed(tp)
            if offset is None:
                offset = (await self._consumer.beginning_offsets([tp]))[tp]
            self._consumer.seek(tp, offset)
            self._next[p] = offset
            if checkpoint is None:
                log.info("partition %d: no checkpoint, from offset %d", p, offset)
            elif checkpoint.open:
                log.info(
                    "partition %d: replaying %d open of offsets [%d, %d)",
                    p,
                    len(checkpoint.open),
                    offset,
                    checkpoint.end,
                )
            else:
                log.info("partition %d: from offset %d", p, offset)
        self._last_input = time.monotonic()
        self._gauge_open_frames()

    async def revoked(self, revoked: list[TopicPartition]) -> None:
        """Drop revoked partitions' state once their last batch is committed (we hold the lock)."""
        async with self._lock:
            await self._settle()
            self._generation += 1
            for tp in revoked:
                self._next.pop(tp.partition, None)
                if self._processors.pop(tp.partition, None) is not None:
                    with contextlib.suppress(KeyError):  # never measured
                        metrics.LAG.remove(str(tp.partition))
            self._gauge_open_frames()

    async def assigned(self, assigned: list[TopicPartition]) -> None:
        """Build assigned partitions' state from their checkpoints."""
        async with self._lock:
            await self._settle()
            await self._restore(sorted(tp.partition for tp in assigned if tp.topic == self.config.topics.raw))
            self._joined = True

    # -- the loop --------------------------------------------------------------------

    async def _poll(self) -> dict[TopicPartition, list[ConsumerRecord]]:
        """One batch: wait up to 1 s for input, then take what is buffered up to the batch bounds."""
        assert self._consumer is not None
        batch = await self._consumer.getmany(timeout_ms=1000, max_records=self.config.max_batch_messages)
        count = sum(len(records) for records in batch.values())
        deadline = time.monotonic() + self.config.max_batch_seconds
        while batch and count < self.config.max_batch_messages and time.monotonic() < deadline:
            more = await self._consumer.getmany(timeout_ms=0, max_records=self.config.max_batch_messages - count)
            if not more:
                break
            for tp, records in more.items():
                batch.setdefault(tp, []).extend(records)
                count += len(records)
        return batch

    async def _finish_replays(self, pending: _Pending) -> None:
        """A replaying partition whose position passed the checkpoint's end (markers, aborted records) is done."""
        assert self._consumer is not None
        for p, processor in self._processors.items():
            end = processor.replay_end
            if end is not None and await self._consumer.position(TopicPartition(self.config.topics.raw, p)) >= end:
                pending.add_frames(self.config.topics.frames, p, processor.finish_replay())
                pending.partitions.add(p)

    async def _judge(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> _Pending:
        """A batch's output; yields to the loop now and then so the transaction in flight progresses."""
        started = time.perf_counter()
        pending = _Pending()
        for tp, records in batch.items():
            processor = self._processors.get(tp.partition)
            if processor is None:
                continue
            for i, record in enumerate(records, 1):
                pending.add(self.config.topics, record, processor.process(record))
                if i % _YIELD_EVERY == 0 and self._in_flight is not None and not self._in_flight.done():
                    await asyncio.sleep(0)
            pending.partitions.add(tp.partition)
            self._next[tp.partition] = records[-1].offset + 1
        await self._finish_replays(pending)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        return pending

    async def _handle(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Judge a batch while the previous one commits, then start committing it."""
        generation = self._generation
        pending = await self._judge(batch)
        await self._settle()
        if self._generation != generation:
            return  # the previous transaction aborted: this batch was judged from state that is gone
        self._in_flight = self._begin(pending)
        self._gauge_lag()

    def _begin(self, pending: _Pending) -> asyncio.Task[bool] | None:
        """Start the transaction of ``pending`` (its checkpoints taken now, before the next batch changes
        the processors); None when there is nothing to commit."""
        checkpoints = {}
        for p in sorted(pending.partitions):
            checkpoint = self._processors[p].checkpoint(self.config.worker)
            if checkpoint is not None:
                checkpoints[p] = checkpoint
        if not pending.records and not checkpoints:
            return None
        return asyncio.create_task(self._transact(pending, checkpoints))

    async def _settle(self) -> None:
        """Wait for the transaction in flight; if it aborted, rebuild every processor from the last commit."""
        task, self._in_flight = self._in_flight, None
        if task is not None and not await task:
            await self._restore(sorted(self._processors))

    async def _transact(self, pending: _Pending, checkpoints: dict[int, Checkpoint]) -> bool:
        """Send a batch's output, checkpoints and offsets in one transaction; False if it aborted.

        It touches no processor: the state is rebuilt by :meth:`_settle`, in the loop, never in the
        middle of judging a batch.
        """
        assert self._producer is not None
        topics = self.config.topics
        started = time.perf_counter()
        try:
            await self._producer.begin_transaction()
            # Each frame says where it sits among its partition's frames of this transaction, so the detector
            # knows the offset after a transaction's last frame is its marker without reading it.
            positions = iter(position_headers([p for topic, p, *_ in pending.records if topic == topics.frames]))
            sent = [
                await self._producer.send(topic, value, key=key, partition=partition,
                                          headers=next(positions) if topic == topics.frames else headers)
                for topic, partition, key, value, headers in pending.records
            ]
            for p, checkpoint in checkpoints.items():
                partition = self._checkpoint_partitions[p % len(self._checkpoint_partitions)].partition
                for key, value in checkpoint.records(self.config.group):
                    sent.append(await self._producer.send(topics.ingest_checkpoints, value, key=key, partition=partition))
            if checkpoints:
                offsets = {TopicPartition(topics.raw, p): c.committed for p, c in checkpoints.items()}
                await self._producer.send_offsets_to_transaction(offsets, self.config.group)
            await asyncio.gather(*sent)
            await self._producer.commit_transaction()
        except ProducerFenced:
            metrics.TRANSACTIONS.labels("fenced").inc()
            raise
        except KafkaError:
            log.exception("transaction failed; aborting and rebuilding state from the last checkpoints")
            metrics.TRANSACTIONS.labels("aborted").inc()
            # A producer that cannot even abort is in a fatal state: crash, and let the restart fence it.
            await self._producer.abort_transaction()
            return False
        metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
        metrics.TRANSACTIONS.labels("committed").inc()
        pending.count()
        self._gauge_open_frames()
        return True

    async def _at_end(self) -> bool:
        """Every assigned partition has been consumed to its last stable offset."""
        assert self._consumer is not None
        assignment = sorted(self._consumer.assignment())
        if not assignment:
            return True
        ends = await self._consumer.end_offsets(assignment)
        lagging = False
        for tp in assignment:
            lag = max(0, ends[tp] - await self._consumer.position(tp))
            metrics.LAG.labels(str(tp.partition)).set(lag)
            lagging = lagging or lag > 0
        return not lagging

    async def _flush(self) -> None:
        """Close every open frame (``idle``, or ``complete`` if it is) and commit."""
        await self._settle()  # first: an abort would rebuild the processors
        pending = _Pending()
        for p, processor in self._processors.items():
            pending.add_frames(self.config.topics.frames, p, processor.flush())
            pending.partitions.add(p)
        self._in_flight = self._begin(pending)
        await self._settle()

    async def _idle(self) -> bool:
        """Handle a poll without input; True when the service should exit (``--exit-when-idle``)."""
        idle_for = time.monotonic() - self._last_input
        exit_after, flush_after = self.config.exit_when_idle, self.config.idle_flush_s
        wants_exit = exit_after is not None and idle_for >= exit_after
        wants_flush = flush_after is not None and idle_for >= flush_after and self._open_frames() > 0
        if not self._joined or not (wants_exit or wants_flush) or not await self._at_end():
            return False
        await self._flush()
        if wants_exit:
            log.info("input idle for %.1f s: flushed open frames, exiting", idle_for)
        return wants_exit

    def _rewind(self) -> None:
        """Drop a batch polled across a rebalance or restore: it may hold records from before the
        re-positioning, and the consumer's position moved past it, so seek back to what each
        processor takes next."""
        assert self._consumer is not None
        for p, offset in self._next.items():
            self._consumer.seek(TopicPartition(self.config.topics.raw, p), offset)

    async def _loop(self) -> None:
        assert self._follower is not None
        while not self._stopping:
            if self._follower.done():
                self._follower.result()  # the archive is no longer followed: raise what stopped it
            generation = self._generation
            batch = await self._poll()
            async with self._lock:
                if self._in_flight is not None and self._in_flight.done():
                    await self._settle()  # an abort rebuilds the state now, not a batch later
                if self._generation != generation:
                    self._rewind()
                    continue
                if batch:
                    self._last_input = time.monotonic()
                    await self._handle(batch)
                elif await self._idle():
                    return
        async with self._lock:
            await self._settle()

    # -- gauges ----------------------------------------------------------------------

    def _open_frames(self) -> int:
        return sum(p.assembler.open_count for p in self._processors.values())

    def _gauge_open_frames(self) -> None:
        metrics.OPEN_FRAMES.set(self._open_frames())

    def _gauge_lag(self) -> None:
        assert self._consumer is not None
        for p, processor in self._processors.items():
            tp = TopicPartition(self.config.topics.raw, p)
            end = self._consumer.last_stable_offset(tp)
            if end is None:
                end = self._consumer.highwater(tp)
            if end is not None and processor.end is not None:
                metrics.LAG.labels(str(p)).set(max(0, end - processor.end))

    # -- lifecycle -------------------------------------------------------------------

    async def run(self) -> int:
        """Run until stopped (0) or idle with ``exit_when_idle`` (0); a fenced producer raises."""
        config = self.config
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        self._producer = aio_producer(
            config.bootstrap_servers, transactional_id=transactional_id(config.group, config.worker)
        )
        archive_reader = aio_consumer(bootstrap_servers=config.bootstrap_servers)
        self._checkpoint_reader = aio_consumer(bootstrap_servers=config.bootstrap_servers)
        self._consumer = aio_consumer(bootstrap_servers=config.bootstrap_servers, group_id=config.group)
        try:
            # Starting the producer fences a previous incarnation and aborts its open transaction,
            # so the checkpoints read below are the last committed ones.
            await self._producer.start()
            await archive_reader.start()
            await self._checkpoint_reader.start()
            self._checkpoint_partitions = await self._partitions(config.topics.ingest_checkpoints)
            ready = asyncio.Event()
            archive = await self._partitions(config.topics.archive)
            self._follower = asyncio.create_task(follow_archive(archive_reader, archive, self.archive, ready))
            waiter = asyncio.create_task(ready.wait())
            await asyncio.wait({self._follower, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if self._follower.done():
                waiter.cancel()
                self._follower.result()  # raises what stopped it
            await self._consumer.start()
            self._consumer.subscribe([config.topics.raw], listener=_Rebalance(self))
            log.info(
                "ingest %s (group %s): %s -> %s, %s; archive of %d areas",
                config.worker,
                config.group,
                config.topics.raw,
                config.topics.frames,
                config.topics.dlq,
                len(self.archive),
            )
            await self._loop()
            return 0
        finally:
            if self._in_flight is not None:  # only when the loop raised: the batch is left to the next start
                self._in_flight.cancel()
            if self._follower is not None:
                self._follower.cancel()
            for client in (self._consumer, self._checkpoint_reader, archive_reader, self._producer):
                try:
                    await client.stop()
                except Exception:  # closing what may never have started
                    log.debug("stopping %r failed", client, exc_info=True)
