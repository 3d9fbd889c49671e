"""Ingest's checkpoint: what a restart needs to continue exactly where the last transaction ended.

Why a checkpoint and not just the consumer offset: a frame stays open across
many input offsets, so the consumer group's committed offset ``c`` of a
partition can only be the smallest offset still held by an open frame,
while later offsets (up to ``e``, the end consumed so far) may already be in
emitted frames or dead letters. Restarting from ``c`` alone would emit
those again.

So every transaction that produces a partition's frames and dead letters
also writes, to the compacted checkpoint topic (key = consumer group and
input partition, partition = input partition mod the checkpoint topic's
partitions), one
:class:`Checkpoint` record, and commits ``c`` as the group's offset. Both are
visible atomically or not at all. The record holds:

``committed`` (c) and ``end`` (e)
    The group offset and the next offset to consume.
``open``
    The offsets in [c, e) holding a reading of a frame that is still open,
    as half-open ranges ``[[start, stop], ...]``.
``rejected``
    For those open offsets, the reading slots (upload index, -1 for the area
    meter or a single-reading message) that were rejected: state-dependent
    verdicts (future, unknown meter/area) must not be re-taken on replay.
``areas``
    Per area: the event-time watermark, the open frames' keys
    ``[ts, interval_minutes]`` and the recently closed frames
    ``[ts, interval_minutes, revision]`` (see :mod:`services.ingest.frames`).
``newest``
    The newest event time accepted in the partition (``future_timestamp``).

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

__all__ = ["OffsetRanges", "AreaMark", "Checkpoint", "ReplayPlan", "checkpoint_key", "load_checkpoints"]

VERSION = 1


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

    def to_json(self) -> dict[str, Any]:
        return {
            "wm": self.watermark,
            "open": [list(k) for k in self.open],
            "closed": [list(c) for c in self.closed],
            "sent": [[ts, iv, digests] for (ts, iv), digests in sorted(self.sent.items())],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> AreaMark:
        return cls(obj["wm"], obj["open"], obj["closed"], {(ts, iv): d for ts, iv, d in obj.get("sent", ())})


class Checkpoint:
    """The state of one input partition after a committed transaction (see the module docstring)."""

    __slots__ = ("partition", "committed", "end", "open", "rejected", "areas", "newest", "worker")

    def __init__(
        self,
        partition: int,
        committed: int,
        end: int,
        open: OffsetRanges,
        rejected: dict[int, tuple[int, ...]],
        areas: dict[str, AreaMark],
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
        self.areas = areas
        self.newest = newest
        self.worker = worker

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Checkpoint) and self.encode() == other.encode()

    def __repr__(self) -> str:
        return f"Checkpoint(p{self.partition}, c={self.committed}, e={self.end}, open={self.open.ranges()})"

    def encode(self) -> bytes:
        """The record value (JSON)."""
        return orjson.dumps(
            {
                "version": VERSION,
                "partition": self.partition,
                "committed": self.committed,
                "end": self.end,
                "open": self.open.ranges(),
                "rejected": [[offset, list(slots)] for offset, slots in sorted(self.rejected.items())],
                "areas": {area: mark.to_json() for area, mark in sorted(self.areas.items())},
                "newest": self.newest,
                "worker": self.worker,
            }
        )

    @classmethod
    def decode(cls, value: bytes) -> Checkpoint:
        """Inverse of :meth:`encode`."""
        obj = orjson.loads(value)
        if obj.get("version") != VERSION:
            raise ValueError(f"unknown checkpoint version {obj.get('version')!r}")
        return cls(
            partition=obj["partition"],
            committed=obj["committed"],
            end=obj["end"],
            open=OffsetRanges((start, stop) for start, stop in obj["open"]),
            rejected={offset: tuple(slots) for offset, slots in obj["rejected"]},
            areas={area: AreaMark.from_json(mark) for area, mark in obj["areas"].items()},
            newest=obj["newest"],
            worker=obj.get("worker", ""),
        )


class ReplayPlan:
    """The replay rule for [c, e) of one partition after a restart (see the module docstring)."""

    __slots__ = ("end", "open", "rejected", "open_frames")

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.end = checkpoint.end
        self.open = checkpoint.open
        self.rejected = checkpoint.rejected
        self.open_frames = frozenset(
            (area, ts, interval) for area, mark in checkpoint.areas.items() for ts, interval in mark.open
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
    """The record key of input partition ``partition``'s checkpoint for consumer group ``group``.

    The group is part of the key: a second group reading the same raw topic
    (a replay from scratch, another environment) has its own state.
    """
    return f"{group}|{partition}".encode()


async def load_checkpoints(
    consumer: AIOKafkaConsumer, group: str, available: list[TopicPartition], partitions: Iterable[int]
) -> dict[int, Checkpoint]:
    """The latest committed checkpoint of each input partition that has one.

    ``available`` are all partitions of the checkpoint topic: input
    partition p's checkpoint lives in ``available[p % len(available)]``.

    Reads only the tail of each checkpoint partition, widening the window
    (64, 512, … offsets) until every wanted key is found or the beginning is
    reached, so a start does not wait for compaction to have run.
    ``consumer`` is started, read_committed, outside any group, and is
    re-assigned here.
    """
    wanted: dict[TopicPartition, set[bytes]] = {}
    for p in partitions:
        wanted.setdefault(available[p % len(available)], set()).add(checkpoint_key(group, p))
    if not wanted:
        return {}
    tps = sorted(wanted)
    consumer.assign(tps)
    begin = await consumer.beginning_offsets(tps)
    end = await consumer.end_offsets(tps)
    found: dict[bytes, ConsumerRecord] = {}

    def take(record: ConsumerRecord) -> None:
        if record.key in wanted[TopicPartition(record.topic, record.partition)] and record.value is not None:
            found[record.key] = record

    window = 64
    todo = [tp for tp in tps if end[tp] > begin[tp]]
    while todo:
        starts = {tp: max(begin[tp], end[tp] - window) for tp in todo}
        for tp, start in starts.items():
            consumer.seek(tp, start)
        await drain(consumer, todo, take)
        todo = [tp for tp in todo if starts[tp] > begin[tp] and not wanted[tp] <= found.keys()]
        window *= 8
    checkpoints = (Checkpoint.decode(record.value) for record in found.values())
    return {checkpoint.partition: checkpoint for checkpoint in checkpoints}
