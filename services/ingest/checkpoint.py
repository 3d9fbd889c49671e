"""Ingest's checkpoint: what a restart needs to continue exactly where the last transaction ended.

Why a checkpoint and not just the consumer offset: a frame stays open across
many input offsets, so the consumer group's committed offset ``c`` of a
partition can only be the smallest offset still held by an open frame,
while later offsets (up to ``e``, the end consumed so far) may already be in
emitted frames or dead letters. Restarting from ``c`` alone would emit
those again.

So every transaction that produces a partition's frames and dead letters
also writes that partition's checkpoint to the compacted checkpoint topic
(partition = input partition mod the checkpoint topic's partitions) and
commits ``c`` as the group's offset. Both are visible atomically or not at
all. A checkpoint is one head record and one record per area:

head (key ``group|partition``, :class:`Checkpoint`)
    ``committed`` (c) and ``end`` (e): the group offset and the next offset
    to consume; ``open``: the offsets in [c, e) holding a reading of a frame
    that is still open, as half-open ranges ``[[start, stop], ...]``;
    ``rejected``: for those open offsets, the reading slots (upload index,
    -1 for the area meter or a single-reading message) that were rejected:
    state-dependent verdicts (future, unknown meter/area) must not be
    re-taken on replay; ``areas``: the ids of every area the partition holds
    state for; ``newest``: the newest event time accepted in the partition
    (``future_timestamp``).
area (key ``group|partition|area``, :class:`AreaMark`)
    The event-time watermark, the open frames' keys ``[ts, interval_minutes]``,
    the recently closed frames ``[ts, interval_minutes, revision]`` and the
    digests of what those sent (see :mod:`services.ingest.frames`).

A transaction writes the head and only the areas whose state changed, so a
record stays the size of one area however many meters the partition holds
(the digests are ~28 bytes per meter and closed frame: one record for a
whole partition passed Kafka's 1 MB limit at ~35,000 meters). The latest
committed record of every key is consistent: each transaction rewrites the
head, so an area record newer than the head would belong to a newer,
committed head. :func:`assemble` turns the latest records back into one
checkpoint with every area's mark.

Times are epoch seconds. The replay rule after a restart (:class:`ReplayPlan`):
seek to c; an offset in [c, e) that is not open is skipped unparsed; an open
one is parsed again and only its readings that are not recorded as
rejected and whose frame is recorded as open go back into their (re-built)
frames, silently: no dead letters, no closing. From e on, input is new.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from services.ingest.compacted import drain
from services.ingest.normalise import Reading

__all__ = ["OffsetRanges", "AreaMark", "Checkpoint", "ReplayPlan", "checkpoint_key", "area_key", "assemble", "load_checkpoints"]

VERSION = 2  # 1 held every area in the one record


class OffsetRanges:
    """A sorted set of offsets as disjoint half-open ranges: compact for the runs Kafka offsets form."""

    __slots__ = ("_starts", "_stops")

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._stops: list[int] = []
        for start, stop in ranges:
            if stop <= start:
                raise ValueError(f"empty range [{start}, {stop})")
            if self._stops and start <= self._stops[-1]:
                raise ValueError("ranges must be sorted and disjoint")
            self._starts.append(start)
            self._stops.append(stop)

    @classmethod
    def of(cls, offsets: Iterable[int]) -> OffsetRanges:
        """The ranges of ``offsets`` (any order, duplicates allowed)."""
        ranges: list[tuple[int, int]] = []
        for offset in sorted(set(offsets)):
            if ranges and ranges[-1][1] == offset:
                ranges[-1] = (ranges[-1][0], offset + 1)
            else:
                ranges.append((offset, offset + 1))
        return cls(ranges)

    def __contains__(self, offset: object) -> bool:
        if not isinstance(offset, int):
            return False
        i = bisect.bisect_right(self._starts, offset) - 1
        return i >= 0 and offset < self._stops[i]

    def __iter__(self):  # type: ignore[no-untyped-def]
        for start, stop in zip(self._starts, self._stops, strict=True):
            yield from range(start, stop)

    def __len__(self) -> int:
        return sum(stop - start for start, stop in zip(self._starts, self._stops, strict=True))

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OffsetRanges) and self.ranges() == other.ranges()

    def __repr__(self) -> str:
        return f"OffsetRanges({self.ranges()})"

    def ranges(self) -> list[list[int]]:
        """``[[start, stop], ...]``, as stored."""
        return [[start, stop] for start, stop in zip(self._starts, self._stops, strict=True)]

    @property
    def first(self) -> int | None:
        """The smallest offset, None when empty."""
        return self._starts[0] if self._starts else None

    @property
    def stop(self) -> int | None:
        """One past the largest offset, None when empty."""
        return self._stops[-1] if self._stops else None


class AreaMark:
    """One area's event-time state in a checkpoint (see :class:`services.ingest.frames.FrameAssembler`)."""

    __slots__ = ("watermark", "open", "closed", "sent")

    def __init__(
        self,
        watermark: int,
        open: Iterable[tuple[int, int]],
        closed: Iterable[tuple[int, int, int]],
        sent: Mapping[tuple[int, int], Mapping[str, int]] | None = None,
    ) -> None:
        self.watermark = watermark
        self.open = tuple(sorted(tuple(k) for k in open))  # type: ignore[misc]
        self.closed = tuple(sorted(tuple(c) for c in closed))  # type: ignore[misc]
        # Digests of the readings each remembered closed frame sent: identical re-sends are dropped.
        self.sent = {tuple(k): dict(v) for k, v in (sent or {}).items()}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AreaMark) and (self.watermark, self.open, self.closed, self.sent) == (
            other.watermark,
            other.open,
            other.closed,
            other.sent,
        )

    def __repr__(self) -> str:
        return f"AreaMark({self.watermark}, open={self.open}, closed={self.closed})"

    def encode(self) -> bytes:
        """The area record's value (JSON)."""
        return orjson.dumps(
            {
                "wm": self.watermark,
                "open": [list(k) for k in self.open],
                "closed": [list(c) for c in self.closed],
                "sent": [[ts, iv, digests] for (ts, iv), digests in sorted(self.sent.items())],
            }
        )

    @classmethod
    def decode(cls, value: bytes) -> AreaMark:
        """Inverse of :meth:`encode`."""
        obj = orjson.loads(value)
        return cls(obj["wm"], obj["open"], obj["closed"], {(ts, iv): d for ts, iv, d in obj["sent"]})


class Checkpoint:
    """The state of one input partition after a committed transaction (see the module docstring).

    ``marks`` holds the areas whose records go with this checkpoint: the
    changed ones when it is written, every one of ``area_ids`` when it was
    :func:`assemble`-d from the topic.
    """

    __slots__ = ("partition", "committed", "end", "open", "rejected", "area_ids", "marks", "newest", "worker")

    def __init__(
        self,
        partition: int,
        committed: int,
        end: int,
        open: OffsetRanges,
        rejected: dict[int, tuple[int, ...]],
        area_ids: Iterable[str],
        marks: dict[str, AreaMark],
        newest: int | None,
        worker: str = "",
    ) -> None:
        if not committed <= end:
            raise ValueError(f"committed offset {committed} is beyond the end {end}")
        if open and (open.first != committed or open.stop > end):
            raise ValueError("open offsets must start at the committed offset and lie below the end")
        self.partition = partition
        self.committed = committed
        self.end = end
        self.open = open
        self.rejected = rejected
        self.area_ids = tuple(sorted(area_ids))
        if not marks.keys() <= set(self.area_ids):
            raise ValueError(f"marks of areas the checkpoint does not list: {sorted(marks.keys() - set(self.area_ids))}")
        self.marks = marks
        self.newest = newest
        self.worker = worker

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Checkpoint) and (self.encode(), self.marks) == (other.encode(), other.marks)

    def __repr__(self) -> str:
        return f"Checkpoint(p{self.partition}, c={self.committed}, e={self.end}, open={self.open.ranges()})"

    def encode(self) -> bytes:
        """The head record's value (JSON)."""
        return orjson.dumps(
            {
                "version": VERSION,
                "partition": self.partition,
                "committed": self.committed,
                "end": self.end,
                "open": self.open.ranges(),
                "rejected": [[offset, list(slots)] for offset, slots in sorted(self.rejected.items())],
                "areas": self.area_ids,
                "newest": self.newest,
                "worker": self.worker,
            }
        )

    @classmethod
    def decode(cls, value: bytes, marks: dict[str, AreaMark]) -> Checkpoint:
        """Inverse of :meth:`encode`, with the area ``marks`` read beside it."""
        obj = orjson.loads(value)
        if obj.get("version") != VERSION:
            raise ValueError(f"unknown checkpoint version {obj.get('version')!r}")
        return cls(
            partition=obj["partition"],
            committed=obj["committed"],
            end=obj["end"],
            open=OffsetRanges((start, stop) for start, stop in obj["open"]),
            rejected={offset: tuple(slots) for offset, slots in obj["rejected"]},
            area_ids=obj["areas"],
            marks=marks,
            newest=obj["newest"],
            worker=obj["worker"],
        )

    def records(self, group: str) -> list[tuple[bytes, bytes]]:
        """``(key, value)`` of the head and of each area in :attr:`marks`, for consumer group ``group``."""
        head = checkpoint_key(group, self.partition)
        return [(head, self.encode())] + [
            (area_key(head, area_id), mark.encode()) for area_id, mark in sorted(self.marks.items())
        ]


class ReplayPlan:
    """The replay rule for [c, e) of one partition after a restart (see the module docstring)."""

    __slots__ = ("end", "open", "rejected", "open_frames")

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.end = checkpoint.end
        self.open = checkpoint.open
        self.rejected = checkpoint.rejected
        self.open_frames = frozenset(
            (area, ts, interval) for area, mark in checkpoint.marks.items() for ts, interval in mark.open
        )

    def covers(self, offset: int) -> bool:
        """The offset was consumed before the restart (it lies below e)."""
        return offset < self.end

    def wants(self, offset: int) -> bool:
        """The offset holds a reading of a frame that was open: parse it again."""
        return offset in self.open

    def keeps(self, offset: int, reading: Reading) -> bool:
        """The reading of a wanted offset goes back into its open frame."""
        return reading.slot not in self.rejected.get(offset, ()) and reading.frame_key in self.open_frames


def checkpoint_key(group: str, partition: int) -> bytes:
    """The key of input partition ``partition``'s head record for consumer group ``group``.

    The group is part of the key: a second group reading the same raw topic
    (a replay from scratch, another environment) has its own state.
    """
    return f"{group}|{partition}".encode()


def area_key(head: bytes, area_id: str) -> bytes:
    """The key of one area's record, beside the head keyed ``head``."""
    return head + b"|" + area_id.encode()


def _listed(head_value: bytes) -> list[str]:
    """The area ids a head record lists."""
    obj = orjson.loads(head_value)
    if obj.get("version") != VERSION:
        raise ValueError(f"unknown checkpoint version {obj.get('version')!r} (this amiwatch writes {VERSION})")
    return obj["areas"]


def _missing_areas(latest: Mapping[bytes, bytes], head: bytes) -> list[str]:
    """The areas the head at ``head`` lists whose records are not (yet) in ``latest``."""
    return [area_id for area_id in _listed(latest[head]) if area_key(head, area_id) not in latest]


def assemble(latest: Mapping[bytes, bytes], group: str, partition: int) -> Checkpoint | None:
    """Input partition ``partition``'s checkpoint from the latest value of each key, None if it has none."""
    head = checkpoint_key(group, partition)
    if head not in latest:
        return None
    listed = _listed(latest[head])
    missing = [area_id for area_id in listed if area_key(head, area_id) not in latest]
    if missing:
        raise ValueError(f"checkpoint {head.decode()!r} lists areas without a record: {missing[:5]}")
    return Checkpoint.decode(latest[head], {area_id: AreaMark.decode(latest[area_key(head, area_id)]) for area_id in listed})


async def load_checkpoints(
    consumer: AIOKafkaConsumer, group: str, available: list[TopicPartition], partitions: Iterable[int]
) -> dict[int, Checkpoint]:
    """The latest committed checkpoint of each input partition that has one.

    ``available`` are all partitions of the checkpoint topic: input
    partition p's records live in ``available[p % len(available)]``.

    Reads only the tail of each checkpoint partition, widening the window
    (64, 512, … offsets) until every wanted head and the area records it
    lists are found or the beginning is reached, so a start does not wait
    for compaction to have run. ``consumer`` is started, read_committed,
    outside any group, and is re-assigned here.
    """
    heads: dict[TopicPartition, dict[bytes, int]] = {}
    for p in partitions:
        heads.setdefault(available[p % len(available)], {})[checkpoint_key(group, p)] = p
    if not heads:
        return {}
    tps = sorted(heads)
    consumer.assign(tps)
    begin = await consumer.beginning_offsets(tps)
    end = await consumer.end_offsets(tps)
    latest: dict[bytes, bytes] = {}
    prefixes = tuple(head + b"|" for wanted in heads.values() for head in wanted)

    def take(record: ConsumerRecord) -> None:
        key = record.key
        wanted = heads[TopicPartition(record.topic, record.partition)]
        if record.value is not None and (key in wanted or key.startswith(prefixes)):
            latest[key] = record.value

    def complete(tp: TopicPartition) -> bool:
        return all(head in latest and not _missing_areas(latest, head) for head in heads[tp])

    window = 64
    todo = [tp for tp in tps if end[tp] > begin[tp]]
    while todo:
        starts = {tp: max(begin[tp], end[tp] - window) for tp in todo}
        for tp, start in starts.items():
            consumer.seek(tp, start)
        await drain(consumer, todo, take)
        todo = [tp for tp in todo if starts[tp] > begin[tp] and not complete(tp)]
        window *= 8
    found = (assemble(latest, group, p) for wanted in heads.values() for p in wanted.values())
    return {checkpoint.partition: checkpoint for checkpoint in found if checkpoint is not None}
