"""The detector as a Faust app: area frames in, per-area state in a table, alerts out.

Map
    topics in    ``frames``   ``<prefix>frames``   area frame JSON, key area id (ingest, transactional)
                 ``archive``  ``<prefix>archive``  area archive JSON, key area id (compacted)
    tables       ``archives``    area id → archive JSON (lz4)       changelog ``<app id>-archives-changelog``
                 ``area_state``  area id → offset + ``AreaState.to_bytes()``, at checkpoints (changelog likewise)
                 ``frame_offsets`` frames partition → last frame applied, last checkpointed  (changelog likewise)
                 ``area_voltage`` (global, opt-in) area id → last two days' voltage profile JSON (wrong_area)
    agents       ``keep_archives``  archive → archives
                 ``detect``         frames + archives + live states → alerts, frame_offsets (area_state when due)
    timers       ``write_due_checkpoints``  live states of quiet partitions → area_state
                 ``gauges``         areas held, consumer lag (metrics only)
                 ``find_unread_tails``  frames Faust lost at a partition's end → seek back to them
    topics out   ``alerts``   ``<prefix>alerts``   alert JSON, key subject id
    app id       ``<prefix>detector``: the consumer group, and the prefix of the changelogs.

The detection itself is :class:`AreaPipeline` (plain modules, no Kafka); this
module only moves bytes between Kafka, the tables and the pipeline.

Why co-partitioning holds. A worker that owns partition *p* of ``frames``
must hold every area of *p* in both tables. Ingest produces each frame to the
partition it read the area's raw readings from, and the raw topic is keyed
by area id with the default (murmur2) partitioner, so an area's frames are in
partition murmur2(area) mod N. The archive topic is keyed by area id with the
same partitioner and the same partition count N, so the area's archive is
in the same partition number. Faust's assignor gives partition *p* of every
topic with N partitions that the same members consume (frames, archive and
both changelogs) to one worker, and a table write goes to the changelog
partition of the event being processed (not to a hash of the table key): the
state written while handling frame partition *p* lands in changelog
partition *p*, the archive in archive partition *p*. So an area's frames, its
archive and its state always live on the same worker and move together.
This needs N equal everywhere (Faust refuses to start with a changelog whose
partition count differs from its source: ``PartitionsMismatch``) and raw and
archive producers with the same partitioner (Java, kafka-python and aiokafka
all default to murmur2; librdkafka's default does not). A frame whose archive
is not on this worker waits ``archive_wait_s`` and is counted ``no_archive``.

Delivery: at-least-once, made exact by determinism. The worker holds its
partitions' area states in memory and writes them at checkpoints
(services/detector/checkpoint.py: a partition's changed states, then its
offsets, every ``CHECKPOINT_FRAMES`` frames per area or ``CHECKPOINT_AGE_S``
after the first unwritten one, and on a clean stop). Per frame, in order:
run the pipeline on the area's live state, send the alert records and wait
for the broker's acknowledgement, record the frame's offset as applied and
wait until the changelog has it (:class:`DeliveredTable`); only then does
the agent move on, and only then may Faust commit the frame's offset. So an
applied frame always has its alerts on the broker. A worker taking a
partition over (after a crash, a restart or a rebalance) restores the
tables from their changelogs, then, before the partition's first frame,
folds the frames applied since its last checkpoint into the restored
states again without sending anything; frames re-read after that, up to
the last applied one, are skipped. A frame after it is processed again and
gives the same alert records (ids and contents derive from event time
only). The one window where a record can reach the alerts topic twice is
one round trip long: between the alerts' acknowledgement and the applied
offset's. A SIGKILL there makes the re-run emit byte-identical records
again, which the alert sink's upsert by alert id absorbs. No alert is lost,
and none is opened under a second id. Faust's ``exactly_once`` does not close
that window on faust-streaming 0.15: it puts the changelog and the offsets in
a transaction but sends agent output to other topics outside it.

Frames are read with ``isolation_level=read_committed`` (ingest writes them
in transactions; an aborted frame must never reach the detectors). Faust
turns that on only under ``exactly_once``, so :class:`_ConsumerThread` asks
for it always. The producer is idempotent (a retry never duplicates).

Standby replicas (``AMIWATCH_DETECTOR_STANDBYS``, default 0). A standby keeps
a live copy of another worker's table partitions by tailing their
changelogs, so a fail-over starts from nearly current tables instead of
reading the changelogs from the start; it costs each worker the memory and
the changelog reads of the partitions it shadows. Locally one worker runs
and has nobody to shadow, and the compacted changelogs (one record per
area) replay in seconds, so the default is 0. With two or more workers and
``rocksdb://`` in production, 1 makes a fail-over take seconds whatever the
fleet's size (tested with two workers).

Frames Faust loses. faust-streaming 0.15.3 sometimes never hands the agent
some frames it fetched around a takeover (see services/detector/gaps.py).
The agent therefore checks each frame's offset against ``frame_offsets``:
an offset at or below the last applied one is a re-read (skipped), one
further on than the next is preceded by whatever a direct read of the
offsets in between finds (transaction markers only, normally; frames Faust
skipped are applied first). Lost frames at a partition's end have no later
frame to reveal them: a timer looks at quiet partitions whose applied
offset is behind the end and seeks Faust's consumer back to them.

Concurrency: one actor per worker handles all the worker's frame partitions
one frame at a time, so each partition is processed in offset order and an
offset is committed only after its frame is done (agent concurrency > 1
lets Faust commit past frames still in progress, and reorders an area's
frames). A lock keeps checkpoints (written by the agent, by a timer and on
stop) from seeing half a frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
from faust import streams as faust_streams
from aiokafka import TopicPartition
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

from amiwatch.kafka.transaction_position import TransactionPosition, ends_transaction, read_position, starts_transaction
from amiwatch.settings import Settings, load_settings
from services.detector import metrics
from services.detector.checkpoint import CheckpointPolicy, LiveArea, LiveAreas, pack_offsets, pack_state, unpack_offsets, unpack_state
from services.detector.codec import ArchiveCache, alert_message, area_key, archive_from_bytes, frame_from_bytes, pack_archive
from services.detector.detectors import DETECTORS
from services.detector.detectors.wrong_area import MappingVoltageDirectory, with_voltage_directory
from services.detector.gaps import GapReader
from services.detector.pipeline import AreaPipeline
from services.detector.state import AreaState
from services.detector.thresholds import load_thresholds

__all__ = ["DetectorConfig", "CONFIG", "app", "frames", "archive", "alerts", "archives", "area_state"]

log = logging.getLogger(__name__)


def _env(name: str, default: str) -> str:
    return os.environ.get(f"AMIWATCH_DETECTOR_{name}", default)


_CHECKPOINT_DEFAULTS = CheckpointPolicy()


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """The detector's configuration, read once from the environment (``AMIWATCH_DETECTOR_*``).

    ``amiwatch detect`` flags set the same variables before this module is imported.
    """

    settings: Settings
    app_id: str
    store: str  # STORE: memory:// (default; tables rebuilt from the changelogs at start) or rocksdb://
    standbys: int  # STANDBYS: hot copies of each table partition on other workers (0: none)
    web_port: int  # WEB_PORT (Settings.detector_web_port): Faust's web server, one per worker
    worker: str  # WORKER: this worker's name (Faust client id, data dir); default detector-<web port>
    datadir: Path  # <state dir>/detector/<worker>: RocksDB files, one directory per worker
    commit_interval_s: float  # COMMIT_INTERVAL_S: how often processed offsets are committed
    session_timeout_s: float  # SESSION_TIMEOUT_S: how long the group waits for a silent (crashed) worker
    archive_wait_s: float  # ARCHIVE_WAIT_S: how long a frame waits for its area's archive
    voltage_directory: bool  # VOLTAGE_DIRECTORY=1: wrong_area's cross-area voltage rule (global table; see the map)
    tail_check_s: float  # TAIL_CHECK_S: how long a partition is quiet before its unread end is looked for
    checkpoint: CheckpointPolicy  # CHECKPOINT_FRAMES, CHECKPOINT_AGE_S: when live states are written

    @classmethod
    def from_env(cls) -> DetectorConfig:
        settings = load_settings()
        web_port = int(os.environ.get("AMIWATCH_DETECTOR_WEB_PORT", settings.detector_web_port))
        worker = _env("WORKER", f"detector-{web_port}")
        return cls(
            settings=settings,
            app_id=settings.topics.detector_app_id,
            store=_env("STORE", "memory://"),
            standbys=int(_env("STANDBYS", "0")),
            web_port=web_port,
            worker=worker,
            datadir=settings.state_dir / "detector" / worker,
            commit_interval_s=float(_env("COMMIT_INTERVAL_S", "1.0")),
            session_timeout_s=float(_env("SESSION_TIMEOUT_S", "10")),
            archive_wait_s=float(_env("ARCHIVE_WAIT_S", "30")),
            voltage_directory=_env("VOLTAGE_DIRECTORY", "0") == "1",
            tail_check_s=float(_env("TAIL_CHECK_S", "5")),
            checkpoint=CheckpointPolicy(
                frames_per_area=int(_env("CHECKPOINT_FRAMES", str(_CHECKPOINT_DEFAULTS.frames_per_area))),
                max_age_s=float(_env("CHECKPOINT_AGE_S", str(_CHECKPOINT_DEFAULTS.max_age_s))),
            ),
        )


# -- Kafka plumbing: read_committed input, idempotent output ---------------------------------


class _ConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    """Faust's consumer thread with two corrections.

    ``read_committed`` always: Faust asks for it only under ``exactly_once``.

    Seeking after a rebalance: Faust re-positions every assigned partition at
    its committed offset once the tables are recovered, and drops what was
    fetched meanwhile; aiokafka's ``seek_to_committed`` moves only partitions
    whose committed offset is above 0. A partition nobody has committed yet
    (a new group, a quiet archive partition) kept the position the fetcher
    had reached, so a record fetched during the rebalance and dropped was
    never read (seen here: an archive produced while two workers were
    joining never reached its worker). Such partitions are sent back to
    their beginning: uncommitted means unprocessed, and re-reading is
    harmless (see the module docstring).
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = self.consumer
        in_transaction = consumer.in_transaction
        consumer.in_transaction = True  # the one flag Faust reads to choose the isolation level here
        try:
            return super()._create_worker_consumer(transport)
        finally:
            consumer.in_transaction = in_transaction

    async def seek_to_committed(self) -> Any:
        return await self.call_thread(self._seek_to_committed_or_beginning)

    async def _seek_to_committed_or_beginning(self) -> Any:
        consumer = self._ensure_consumer()
        committed = await consumer.seek_to_committed()
        changelogs = set(self.app.tables.changelog_topics)
        never = [tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs]
        if never:
            await consumer.seek_to_beginning(*never)
        return committed

    def verify_event_path(self, now: float, tp: TP) -> None:
        """Faust's livelock check, minus its crash on a partition whose position is being reset.

        A partition sent back to its beginning has no position until aiokafka
        has looked the offset up; Faust's check reads it unguarded, and the
        ``AssertionError`` crashes the whole consumer (seen here with a
        standby replica, right after "Seek stream partitions to committed
        offsets"). Such a partition is skipped until it has a position.
        """
        subscription = self._ensure_consumer()._fetcher._subscriptions.subscription
        state = subscription.assignment.state_value(TopicPartition(tp.topic, tp.partition)) if subscription else None
        if state is not None and not state.has_valid_position:
            return None
        return super().verify_event_path(now, tp)


class _Consumer(aiokafka_driver.Consumer):
    def _new_consumer_thread(self) -> aiokafka_driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Producer(aiokafka_driver.Producer):
    def _settings_extra(self) -> dict[str, Any]:
        return {"acks": "all", "enable_idempotence": True}


class _Transport(aiokafka_driver.Transport):
    Consumer = _Consumer
    Producer = _Producer


class DeliveredTable(faust.Table):
    """A table whose writes can be awaited until the broker has them in the changelog.

    Faust buffers changelog records and its pre-commit flush gives up after
    0.1 s without progress, so a busy worker could commit a frame's offset
    while the frame's writes still sit in that buffer; a crash then would
    lose what no replay restores. Awaiting :meth:`delivered` before the
    agent moves past the frame makes them durable before the offset can be
    committed, and surfaces a failed write (Faust only logs it).
    """

    _pending: list[asyncio.Future] | None = None

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        fut = super().send_changelog(*args, **kwargs)
        if self._pending is None:
            self._pending = []
        self._pending.append(fut)
        return fut

    async def delivered(self) -> None:
        """Wait until every write since the last call is in the changelog (raises if one failed)."""
        pending, self._pending = self._pending, None
        if pending:
            await asyncio.gather(*pending)


class DetectorApp(faust.App):
    """A Faust app on the transport above, which writes its live states and stops the gap reader on the way out."""

    def _new_transport(self) -> _Transport:
        return _Transport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> _Transport:
        return _Transport(self.conf.broker_producer, self)

    async def on_stop(self) -> None:
        if not self.rebalancing:  # mid-rebalance the partitions may be someone else's already
            async with _FRAME_LOCK:
                await _write_checkpoints(LIVE.dirty(), release=True)
        await GAPS.stop()
        await super().on_stop()


# -- the map -----------------------------------------------------------------------------------

CONFIG = DetectorConfig.from_env()
PARTITIONS = CONFIG.settings.partitions
TOPICS = CONFIG.settings.topics

app = DetectorApp(
    CONFIG.app_id,
    broker=[f"kafka://{server}" for server in CONFIG.settings.bootstrap_servers.split(",")],
    store=CONFIG.store,
    datadir=str(CONFIG.datadir),
    table_standby_replicas=CONFIG.standbys,
    processing_guarantee="at_least_once",
    topic_partitions=PARTITIONS,
    topic_disable_leader=True,
    broker_client_id=CONFIG.worker,
    broker_commit_interval=CONFIG.commit_interval_s,
    broker_session_timeout=CONFIG.session_timeout_s,
    broker_heartbeat_interval=max(1.0, CONFIG.session_timeout_s / 5),
    broker_rebalance_timeout=max(20.0, 2 * CONFIG.session_timeout_s),
    consumer_auto_offset_reset="earliest",
    web_host="127.0.0.1",
    web_port=CONFIG.web_port,
    canonical_url=f"http://127.0.0.1:{CONFIG.web_port}",
    key_serializer="raw",
    value_serializer="raw",
    Table=DeliveredTable,
    producer_compression_type="zstd",  # as amiwatch.kafka.clients: aiokafka's lz4 is its slow level 9
)

frames = app.topic(TOPICS.frames, partitions=PARTITIONS)
archive = app.topic(TOPICS.archive, partitions=PARTITIONS)
alerts = app.topic(TOPICS.alerts)

# key_type/value_type bytes make Faust (de)serialize the changelogs raw: a table's codec
# comes from its types, not from the app's serializers, and defaults to JSON.
archives = app.Table("archives", partitions=PARTITIONS, key_type=bytes, value_type=bytes,
                     help="area id → archive JSON, lz4 (the area's latest ami.archive record)")
area_state = app.Table("area_state", partitions=PARTITIONS, key_type=bytes, value_type=bytes,
                       help="area id → last frame offset folded in + AreaState bytes, written at checkpoints")
frame_offsets = app.Table("frame_offsets", partitions=PARTITIONS, key_type=bytes, value_type=bytes,
                          help="frames partition → last frame applied, last frame checkpointed (checkpoint.py)")
GAPS = GapReader(CONFIG.settings.bootstrap_servers, client_id=f"{CONFIG.worker}-gaps")
# wrong_area's voltage rule compares an area's meters with *other* areas' daily voltage profiles, which
# live on other partitions and other workers: with AMIWATCH_DETECTOR_VOLTAGE_DIRECTORY=1 every area
# publishes its profile to this global table and every worker reads all of it. Off by default: what a
# day's judgement sees of its peers then depends on how far the other partitions have got (a backlog,
# a replay after a crash, a rebalance), so the stream's output is no longer a function of its input
# alone and a replay may judge that rule differently; the offline runner, `evaluate` and `backtest`
# always use it (one process sees every area in order). The area's negative-loss signal of wrong_area
# needs no peers and always runs. synchronize_all_active_partitions: each worker also tails the
# partitions it writes (faust-streaming#283: without it a worker holding only actives never resumes them).
if CONFIG.voltage_directory:
    area_voltage = app.GlobalTable("area_voltage", partitions=PARTITIONS, key_type=bytes, value_type=bytes,
                                   synchronize_all_active_partitions=True,
                                   help="area id → its last two days' hourly voltage profile (JSON, wrong_area)")
    PIPELINE = AreaPipeline(load_thresholds(), with_voltage_directory(DETECTORS, MappingVoltageDirectory(area_voltage)))
else:
    PIPELINE = AreaPipeline(load_thresholds())


@app.agent(archive, concurrency=1)
async def keep_archives(stream: faust.StreamT) -> None:
    """Keep each area's latest archive record in ``archives`` (a tombstone deletes it)."""
    async for event in stream.events():
        await _keep_archive(event)


@app.agent(frames, concurrency=1)
async def detect(stream: faust.StreamT) -> None:
    """Apply each frame of a partition once, in offset order, including any Faust skipped (module docstring)."""
    async for event in stream.events():
        message = event.message
        async with _FRAME_LOCK:
            await _rebuild(message.topic, message.partition)
            applied = await _applied_offset(message.topic, message.partition)
            if message.offset <= applied:  # re-read after a restart or a seek
                metrics.observe_frame("duplicate", 0.0, None)
                continue
            position = read_position(message.headers)
            if message.offset > applied + 1:
                if _marker_only(message.partition, applied, message.offset) and starts_transaction(position):
                    await app.consumer._add_gap(TP(message.topic, message.partition), applied + 1, applied + 1)
                else:
                    await _apply_skipped(message.topic, message.partition, applied + 1, message.offset)
            await _detect(message.topic, message.partition, message.offset, event.value)
            _last_position[message.partition] = (message.offset, position)
            await _write_checkpoints(LIVE.due())


@app.timer(interval=max(0.2, min(5.0, CONFIG.checkpoint.max_age_s / 4)))
async def write_due_checkpoints() -> None:
    """Write the live states of partitions due by age (a quiet partition gets no frame to do it)."""
    if app.rebalancing:
        return
    async with _FRAME_LOCK:
        await _write_checkpoints(LIVE.due())


@app.on_partitions_assigned.connect
async def _forget_moved_partitions(_app: faust.App, assigned: set[TP], **_: Any) -> None:
    """Drop the live states of frames partitions this worker no longer holds (checkpoint.py)."""
    LIVE.keep_only({tp.partition for tp in assigned if tp.topic == frames.get_topic_name()})
    _last_position.clear()


@app.timer(interval=5.0)
async def gauges() -> None:
    """Areas held and consumer lag, for the metrics."""
    _update_gauges()


@app.timer(interval=CONFIG.tail_check_s)
async def find_unread_tails() -> None:
    """Send Faust's consumer back to frames it lost at the end of a quiet partition (module docstring).

    Not while a rebalance is under way: the partitions are paused until the
    tables are recovered, so they look quiet without having lost anything,
    and a seek then would move a position the recovery is about to set. The
    quiet clocks start again once it is over.
    """
    if app.rebalancing:
        _last_applied_at.clear()
        return
    now = time.monotonic()
    for tp in _assigned_frames_partitions().values():
        if _last_applied_at.setdefault(tp.partition, now) > now - CONFIG.tail_check_s:
            continue
        applied = await _applied_offset(tp.topic, tp.partition)
        _first, end = await GAPS.bounds(tp.topic, tp.partition)
        if _marker_only(tp.partition, applied, end):
            continue
        if applied + 1 < end and await GAPS.read(tp.topic, tp.partition, applied + 1, end, first_only=True):
            log.warning("%s: frames after offset %d (end %d) were never handed to the agent; reading them again",
                        tp, applied, end)
            metrics.count_lost_frames("tail")
            _last_applied_at[tp.partition] = time.monotonic() + _RESEND_GRACE_S
            await app.consumer.seek_wait({tp: applied + 1})


# -- what the agents do ------------------------------------------------------------------------

_decoded_archives = ArchiveCache()
_archive_arrived: dict[bytes, asyncio.Event] = {}
_last_applied_at: dict[int, float] = {}  # frames partition → monotonic time of its last frame applied
# frames partition → offset of the last frame the agent applied and its place in its transaction (from its
# header): the offset after a transaction's last frame is its marker, which then needs no read.
_last_position: dict[int, tuple[int, TransactionPosition | None]] = {}
_RESEND_GRACE_S = 30.0  # a partition sent back to its unread frames is not sent back again sooner
LIVE = LiveAreas(CONFIG.checkpoint)  # the live states of this worker's frames partitions (checkpoint.py)
_FRAME_LOCK = asyncio.Lock()  # one frame or one checkpoint at a time: a checkpoint never sees half a frame
_REBUILD_PAGE = 500  # frames read at a time when rebuilding


async def _keep_archive(event: faust.EventT) -> None:
    key, value = event.key, event.value
    if value is None:  # a tombstone: the area is gone
        if key is not None and key in archives:
            del archives[key]
            _decoded_archives.forget(key)
        return
    try:
        area_id = archive_from_bytes(value).area_id
    except Exception:
        log.exception("archive record at %s offset %d is not an archive; ignored", _tp(event), event.message.offset)
        return
    key = area_key(area_id)
    archives[key] = pack_archive(value)
    async with _or_die("archive changelog write"):
        await archives.delivered()
    _archive_arrived.setdefault(key, asyncio.Event()).set()
    log.info("archive of area %s kept (%s offset %d)", area_id, _tp(event), event.message.offset)


async def _archive_for(key: bytes) -> bytes | None:
    """The area's archive bytes, waiting up to ``archive_wait_s`` for its record to arrive."""
    value = archives.get(key)
    if value is None:
        arrived = _archive_arrived.setdefault(key, asyncio.Event())
        try:
            await asyncio.wait_for(arrived.wait(), CONFIG.archive_wait_s)
        except asyncio.TimeoutError:
            return None
        value = archives.get(key)
    return value


async def _offsets(topic: str, partition: int) -> tuple[int, int]:
    """The partition's last frame applied and last frame checkpointed; before the first, one before its start."""
    value = frame_offsets.get(_partition_key(partition))
    if value is not None:
        return unpack_offsets(value)
    first, _end = await GAPS.bounds(topic, partition)
    return first - 1, first - 1


async def _applied_offset(topic: str, partition: int) -> int:
    """Offset of the last frame of the partition this group applied; before the first, one before its start."""
    return (await _offsets(topic, partition))[0]


async def _rebuild(topic: str, partition: int) -> None:
    """Fold the frames applied since the partition's last checkpoint into its states, once per takeover.

    They were applied before (by this worker before a restart, or by the one
    that held the partition), so their alerts are on the broker: nothing is
    sent. Areas whose written state already includes a frame skip it.
    """
    live = LIVE.partition(partition)
    if live.rebuilt:
        return
    applied, checkpointed = await _offsets(topic, partition)
    start = checkpointed + 1
    while start <= applied:
        end = min(applied + 1, start + _REBUILD_PAGE)
        async with _or_die("reading the frames after the last checkpoint"):
            records = await GAPS.read(topic, partition, start, end)
        for record in records:
            await _detect(topic, partition, record.offset, record.value, rebuilding=True)
        start = end
    if applied > checkpointed:
        log.info("%s: state rebuilt from the checkpoint at offset %d and frames up to %d",
                 TP(topic, partition), checkpointed, applied)
    live.rebuilt = True


async def _apply_skipped(topic: str, partition: int, start: int, end: int) -> None:
    """Apply the frames between the last applied one and the one in hand that Faust never delivered."""
    async with _or_die("reading the frames before a gap"):
        skipped = await GAPS.read(topic, partition, start, end)
    if skipped:
        log.warning("%s offsets %d..%d: %d frames were never handed to the agent; applying them first",
                    TP(topic, partition), start, end - 1, len(skipped))
        metrics.count_lost_frames("gap")
    for record in skipped:
        await _detect(topic, partition, record.offset, record.value)
    # What lies between is applied (or a transaction marker): Faust may commit past it.
    await app.consumer._add_gap(TP(topic, partition), start, end - 1)


async def _detect(topic: str, partition: int, offset: int, value: bytes, *, rebuilding: bool = False) -> None:
    """Run one frame through its area's pipeline; alerts out, then the applied offset.

    ``rebuilding``: the frame was applied before (see :func:`_rebuild`); its
    state changes are made again and nothing is sent or recorded.
    """
    started = time.perf_counter()
    if not rebuilding:
        metrics.touch()
        _last_applied_at[partition] = time.monotonic()
    where = f"{topic}[{partition}] offset {offset}"
    try:
        frame = frame_from_bytes(value)
        key = area_key(frame.area_id)
        raw_archive = await _archive_for(key)
        if raw_archive is None:
            log.error("frame %s at %s: no archive for area %s after %.0f s; skipped",
                      frame.frame_id, where, frame.area_id, CONFIG.archive_wait_s)
            await _done("no_archive", partition, offset, started, frame.ts, rebuilding)
            return
        area = _live_area(partition, key, frame.area_id)
        state = area.state
        replayed = offset <= area.offset or (frame.ts, frame.revision) in state.recent_frames
        if not replayed:
            # The state is updated in place: a frame that fails half-way keeps what it changed, the same on
            # every replay, as the pipeline is deterministic.
            area.offset = offset
            LIVE.folded(partition, key, area)
            records = PIPELINE.process(frame, _decoded_archives.get(key, raw_archive), state)
    except Exception:
        # A frame that cannot be decoded or processed is skipped, not retried forever:
        # it stays in the topic for a replay once the cause is fixed.
        log.exception("frame at %s failed; skipped", where)
        await _done("error", partition, offset, started, None, rebuilding)
        return
    metrics.observe_area(partition, key, state, _decoded_archives.get(key, raw_archive))
    if replayed:
        await _done("duplicate", partition, offset, started, frame.ts, rebuilding)
        return
    if not rebuilding:
        async with _or_die("alert delivery"):
            await _send_alerts(records)
        for record in records:
            metrics.count_alert(record)
    await _done("processed", partition, offset, started, frame.ts, rebuilding)


async def _done(result: str, partition: int, offset: int, started: float, event_ts: int | None,
                rebuilding: bool) -> None:
    """Count the frame and, unless rebuilding, record it as applied."""
    metrics.observe_frame("rebuilt" if rebuilding else result, time.perf_counter() - started, event_ts)
    if not rebuilding:
        await _applied(partition, offset)


def _marker_only(partition: int, applied: int, next_offset: int) -> bool:
    """Only the marker of its transaction lies between the frame applied at ``applied`` and ``next_offset``.

    True when that frame was its transaction's last in ``partition`` and
    ``next_offset`` is two further on (the next frame must also start its own
    transaction; see :mod:`amiwatch.kafka.transaction_position`).
    """
    last = _last_position.get(partition)
    return next_offset == applied + 2 and last is not None and last[0] == applied and ends_transaction(last[1])


def _live_area(partition: int, key: bytes, area_id: str) -> LiveArea:
    """The area's live state: held, else its last checkpoint, else a new one."""
    live = LIVE.partition(partition)
    area = live.areas.get(key)
    if area is None:
        record = area_state.get(key)
        if record is None:
            area = LiveArea(-1, PIPELINE.new_state(area_id))
        else:
            offset, data = unpack_state(record)
            area = LiveArea(offset, AreaState.from_bytes(data))
        live.areas[key] = area
    return area


async def _applied(partition: int, offset: int) -> None:
    """Record the frame at ``offset`` as applied, durably, before the agent moves on.

    Frames without alerts wait too: letting them go on (tried in ``fcfcb2e``)
    was followed by an alert record delivered twice in the SIGKILL test,
    likely because a kill then lands more often in an alert frame's window.
    """
    key = _partition_key(partition)
    value = frame_offsets.get(key)
    checkpointed = unpack_offsets(value)[1] if value is not None else offset - 1
    frame_offsets[key] = pack_offsets(offset, checkpointed)
    async with _or_die("frame offset changelog write"):
        await frame_offsets.delivered()


async def _write_checkpoints(partitions: list[int], *, release: bool = False) -> None:
    """Write the changed live states of ``partitions``, then mark their applied frames checkpointed.

    The states are durable before the offsets say so; a crash between the two
    leaves states ahead of the checkpoint, which their own offsets cover.
    ``release`` (the worker is stopping): drop each live state once its record
    is made, so writing a million of them does not hold both at once (an area
    asked for again is read back from its record).
    """
    for partition in partitions:
        live = LIVE.partition(partition)
        key = _partition_key(partition)
        with _writing_to(partition):
            for area_key_ in sorted(live.dirty):
                area = live.areas.pop(area_key_) if release else live.areas[area_key_]
                area_state[area_key_] = pack_state(area.offset, area.state.to_bytes())
            async with _or_die("state changelog write"):
                await area_state.delivered()
            applied, _ = unpack_offsets(frame_offsets[key])
            frame_offsets[key] = pack_offsets(applied, applied)
            async with _or_die("frame offset changelog write"):
                await frame_offsets.delivered()
        metrics.count_checkpoint(len(live.dirty))
        LIVE.written(partition)


class _PartitionEvent:
    """Stands in for an event of one frames partition (see :func:`_writing_to`)."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(topic=frames.get_topic_name(), partition=partition)


@contextlib.contextmanager
def _writing_to(partition: int) -> Iterator[None]:
    """Table writes inside go to ``partition``'s changelog partition, whatever event is in hand.

    Faust takes a write's changelog partition (and RocksDB's database) from the
    event being processed, and refuses writes outside one; a checkpoint writes
    a partition's states from a timer, or while handling another partition's
    frame.
    """
    event = _PartitionEvent(partition)
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


def _partition_key(partition: int) -> bytes:
    return b"%d" % partition


async def _send_alerts(records: list[dict[str, Any]]) -> None:
    """Send alert records and wait until the broker has them all."""
    pending = []
    for record in records:
        key, value = alert_message(record)
        pending.append(await alerts.send(key=key, value=value))
    await asyncio.gather(*pending)


@contextlib.asynccontextmanager
async def _or_die(what: str) -> AsyncIterator[None]:
    """Exit the process at once if a write to Kafka fails.

    The state must not move past alerts that were not delivered, and Faust
    commits a frame's offset once the agent moves on or raises: stopping as a
    crash would (nothing committed, nothing flushed) makes the frame be read
    again after the restart.
    """
    try:
        yield
    except Exception:
        log.critical("%s failed; exiting without committing", what, exc_info=True)
        logging.shutdown()
        os._exit(75)


def _assigned_frames_partitions() -> dict[int, TP]:
    """This worker's frames partitions (none before the consumer has started)."""
    try:
        assignment = app.consumer.assignment()
    except Exception:  # consumer not started yet
        return {}
    return {tp.partition: tp for tp in assignment if tp.topic == frames.get_topic_name()}


def _update_gauges() -> None:
    metrics.AREAS.set(len(set(area_state) | LIVE.keys()))
    assigned = _assigned_frames_partitions()
    metrics.hold_partitions(set(assigned))
    offsets = {p: frame_offsets.get(_partition_key(p)) for p in assigned}
    metrics.set_consumer_lag(
        {p: app.consumer.highwater(tp) - 1 - unpack_offsets(offsets[p])[0] for p, tp in assigned.items()
         if offsets[p] is not None and app.consumer.highwater(tp) is not None}
    )


def _tp(event: faust.EventT) -> TP:
    return TP(event.message.topic, event.message.partition)
