"""Everything ingest holds for one input partition, and the rule that turns a record into output.

A :class:`PartitionProcessor` owns the partition's :class:`FrameAssembler`
and its bookkeeping for the checkpoint. It is pure (no Kafka, no clock but
an injectable one): the service feeds it records in offset order, sends what
:meth:`PartitionProcessor.process` returns, and writes
:meth:`PartitionProcessor.checkpoint` in the same transaction.

State lives only here, in memory, and is committed only as the checkpoint
written with the output it produced. After a restart (or a rebalance, or an
aborted transaction) a new processor starts from the last committed
checkpoint and replays [c, e) by the rule of :class:`ReplayPlan`; until the
replay is finished it has no checkpoint of its own to write (the last one
still holds), and it emits nothing: everything those offsets produced is
already committed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from services.ingest.admission import admit, admit_one
from services.ingest.archive_view import ArchiveView
from services.ingest.checkpoint import Checkpoint, OffsetRanges, ReplayPlan
from services.ingest.dlq import RawRecord, dead_letter
from services.ingest.frames import FrameAssembler
from services.ingest.validation import Rejection, valid_standalone, validate

__all__ = ["Outcome", "PartitionProcessor"]


class Outcome:
    """What one record produced: frames and dead letters to send, and what to count.

    ``replayed`` is True for a record re-read from the checkpoint: it makes
    no dead letters (they are committed already) and frames only if it ends
    the replay, and it counts only as replayed.
    """

    __slots__ = ("frames", "dead_letters", "kind", "accepted", "rejections", "replayed", "late_duplicates")

    def __init__(
        self,
        frames: list[dict[str, Any]] | None = None,
        dead_letters: list[dict[str, Any]] | None = None,
        kind: str = "",
        accepted: int = 0,
        rejections: list[Rejection] | None = None,
        replayed: bool = False,
        late_duplicates: int = 0,
    ) -> None:
        self.frames = frames if frames is not None else []
        self.dead_letters = dead_letters if dead_letters is not None else []
        self.kind = kind
        self.accepted = accepted
        self.rejections = rejections if rejections is not None else []
        self.replayed = replayed
        self.late_duplicates = late_duplicates  # identical re-sends of already closed frames, dropped


_ACCEPTED = {kind: Outcome(frames=[], dead_letters=[], kind=kind, accepted=1)
             for kind in ("meter_reading", "area_meter_reading")}
"""The outcome of most single-reading messages (accepted, closing nothing), made once: read, never changed."""


class PartitionProcessor:
    """One input partition's state: open frames, event time, and the checkpoint bookkeeping."""

    __slots__ = ("partition", "assembler", "_archive", "_clock", "_plan", "_rejected", "end")

    def __init__(
        self,
        partition: int,
        archive: ArchiveView,
        *,
        checkpoint: Checkpoint | None = None,
        grace_intervals: int = 2,
        stale_s: int = 6 * 3600,
        horizon_s: int = 7 * 86_400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.partition = partition
        self.assembler = FrameAssembler(archive, grace_intervals=grace_intervals, stale_s=stale_s, horizon_s=horizon_s)
        self._archive = archive
        self._clock = clock
        self._plan: ReplayPlan | None = None
        # Rejected reading slots per offset not yet below the committed offset:
        # the checkpoint records those of open offsets (see checkpoint.py).
        self._rejected: dict[int, tuple[int, ...]] = {}
        self.end: int | None = None  # next new offset (the checkpoint's e while replaying); None before any input
        if checkpoint is not None:
            self.assembler.restore(checkpoint.marks, checkpoint.newest)
            self.end = checkpoint.end
            if checkpoint.open:
                self._plan = ReplayPlan(checkpoint)
                self._rejected = dict(checkpoint.rejected)

    @property
    def replaying(self) -> bool:
        """Offsets below the checkpoint's end are still being re-read."""
        return self._plan is not None

    @property
    def replay_end(self) -> int | None:
        """The checkpoint's end while replaying, else None."""
        return self._plan.end if self._plan is not None else None

    def finish_replay(self) -> list[dict[str, Any]]:
        """End the replay (input reached the checkpoint's end); return the frames the restored state closes."""
        if self._plan is None:
            return []
        self._plan = None
        return self.assembler.close_due()

    def _replay(self, record: RawRecord) -> Outcome:
        plan = self._plan
        assert plan is not None
        if plan.wants(record.offset):
            parsed = validate(record.value)
            self.assembler.rebuild((r for r in parsed.readings if plan.keeps(record.offset, r)), record.offset)
        frames = self.finish_replay() if record.offset + 1 >= plan.end else []
        return Outcome(frames=frames, replayed=True)

    def process(self, record: RawRecord) -> Outcome:
        """Judge one raw record (in offset order) and return what it produces."""
        if self.end is not None and record.offset < self.end and self._plan is None:
            return Outcome(replayed=True)  # below what is already done (a stale fetch): nothing to do
        if self._plan is not None:
            if self._plan.covers(record.offset):
                return self._replay(record)
            frames = self.finish_replay()
        else:
            frames = []
        fast = valid_standalone(record.value)
        if fast is not None:  # the common single-reading message, without validate()'s layers
            kind, reading = fast
            rejection = admit_one(reading, self._archive, self.assembler.newest, self._clock())
            accepted, rejections = ([reading], []) if rejection is None else ([], [rejection])
        else:
            parsed = validate(record.value)
            kind = parsed.kind
            accepted, rejections = admit(parsed, self._archive, self.assembler.newest, self._clock())
        if rejections and accepted:
            self._rejected[record.offset] = tuple(r.slot for r in rejections)
        dropped_before = self.assembler.late_duplicates
        frames.extend(self.assembler.add(accepted, record.offset))
        self.end = record.offset + 1
        plain = not frames and not rejections and len(accepted) == 1
        if plain and kind in _ACCEPTED and self.assembler.late_duplicates == dropped_before:
            return _ACCEPTED[kind]
        return Outcome(
            frames=frames,
            dead_letters=[dead_letter(r, record) for r in rejections],
            kind=kind,
            accepted=len(accepted),
            rejections=rejections,
            late_duplicates=self.assembler.late_duplicates - dropped_before,
        )

    def flush(self) -> list[dict[str, Any]]:
        """Close every open frame as ``idle`` (the input is at its end)."""
        return self.finish_replay() + self.assembler.flush()

    def checkpoint(self, worker: str = "") -> Checkpoint | None:
        """The state to commit with this partition's output; None while replaying or before any input.

        Its marks are the areas changed since the last call: call it once per
        transaction, and after an abort start again from the committed state.
        """
        if self._plan is not None or self.end is None:
            return None
        open_offsets = OffsetRanges.of(self.assembler.open_offsets())
        committed = open_offsets.first if open_offsets else self.end
        self._rejected = {o: s for o, s in self._rejected.items() if o >= committed}
        return Checkpoint(
            partition=self.partition,
            committed=committed,
            end=self.end,
            open=open_offsets,
            rejected={o: s for o, s in self._rejected.items() if o in open_offsets},
            area_ids=self.assembler.area_ids(),
            marks=self.assembler.marks(self.assembler.take_changed()),
            newest=self.assembler.newest,
            worker=worker,
        )
