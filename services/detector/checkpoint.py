"""Checkpointed area state: live in the worker's memory, written to the changelog now and then.

Why. An area's state is about 1 KiB per meter and every frame changes
nearly all of it (each meter's averages, buckets and rings move with its
reading), so writing it after every frame costs about 1 KiB of changelog
per reading, and compressing those records was the largest cost of the
detector. Instead a worker keeps the states of its partitions in memory
and writes a partition's states (a *checkpoint*) once its areas have
:attr:`CheckpointPolicy.frames_per_area` frames not yet written, on
average, or its oldest unwritten frame was applied
:attr:`CheckpointPolicy.max_age_s` ago. Between checkpoints only the
partition's offsets are written, after every frame (a few bytes).

What survives a crash. Per frames partition the ``frame_offsets`` table
holds two offsets (:func:`pack_offsets`): *applied*, the last frame whose
alerts the broker has, and *checkpointed*, the last frame every area's
written state includes. Each area's record carries the offset of the last
frame folded into it (:func:`pack_state`), so a checkpoint cut short by a
crash is harmless. A worker taking a partition over rebuilds its live
states before its first frame: it reads the frames after *checkpointed*
up to *applied* again and folds each one into the area states that do not
include it yet, sending nothing (their alerts were delivered the first
time). So the cost of a crash or a hand-over is a replay of at most one
checkpoint period of frames, and nothing is lost or sent twice.
"""

from __future__ import annotations

import struct
import time

import lz4.frame
from collections.abc import Callable
from dataclasses import dataclass, field

from services.detector.state import AreaState

__all__ = ["CheckpointPolicy", "LiveArea", "LivePartition", "LiveAreas",
           "pack_state", "unpack_state", "pack_offsets", "unpack_offsets"]

_OFFSET = struct.Struct("<q")


def pack_state(offset: int, state: bytes) -> bytes:
    """An ``area_state`` record: the offset of the last frame folded in, then the state's bytes, lz4-compressed.

    Compressed here, not only in the producer's batches, because the table
    keeps the record (in memory with ``memory://``) beside the live state:
    the NaN and zero columns make it about 2.3 times smaller, for well under
    a millisecond per area at a checkpoint.
    """
    return _OFFSET.pack(offset) + lz4.frame.compress(state)


def unpack_state(record: bytes) -> tuple[int, bytes]:
    """``(offset, state bytes)`` of an ``area_state`` record."""
    return _OFFSET.unpack_from(record)[0], lz4.frame.decompress(record[_OFFSET.size :])


def pack_offsets(applied: int, checkpointed: int) -> bytes:
    """A ``frame_offsets`` record: the last frame applied and the last one every written state includes."""
    return b"%d %d" % (applied, checkpointed)


def unpack_offsets(record: bytes) -> tuple[int, int]:
    """``(applied, checkpointed)``; a record of one offset (states written after every frame) is both."""
    applied, _, checkpointed = record.partition(b" ")
    return int(applied), int(checkpointed or applied)


@dataclass(frozen=True, slots=True)
class CheckpointPolicy:
    """When a partition's live states are written (the first condition met).

    Changelog bytes per reading come to about the state per meter divided by
    the frames per area between checkpoints; a crash or hand-over replays
    at most that many frames per area.
    """

    frames_per_area: int = 48  # unwritten frames per live area of the partition, on average
    max_age_s: float = 43_200.0  # seconds since the oldest unwritten frame was applied


@dataclass(slots=True)
class LiveArea:
    """An area's state as the worker holds it, with the offset of the last frame folded in."""

    offset: int
    state: AreaState


@dataclass(slots=True)
class LivePartition:
    """One frames partition's live areas and what has not been written of them."""

    areas: dict[bytes, LiveArea] = field(default_factory=dict)
    dirty: set[bytes] = field(default_factory=set)
    unwritten: int = 0  # frames applied since the last checkpoint
    oldest: float | None = None  # clock time of the first of them
    rebuilt: bool = False  # the frames after the last checkpoint are folded in (see the module docstring)


class LiveAreas:
    """The live states of a worker's frames partitions, and the checkpoint policy over them."""

    def __init__(self, policy: CheckpointPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._partitions: dict[int, LivePartition] = {}

    def partition(self, partition: int) -> LivePartition:
        """The partition's live areas (empty and not rebuilt when it is new to this worker)."""
        return self._partitions.setdefault(partition, LivePartition())

    def folded(self, partition: int, key: bytes, area: LiveArea) -> None:
        """Record that a frame changed ``area`` (it must be written at the next checkpoint)."""
        live = self.partition(partition)
        live.areas[key] = area
        live.dirty.add(key)
        live.unwritten += 1
        if live.oldest is None:
            live.oldest = self._clock()

    def due(self) -> list[int]:
        """Partitions whose states should be written now."""
        now = self._clock()
        return [
            p for p, live in self._partitions.items()
            if live.dirty and (live.unwritten >= self.policy.frames_per_area * len(live.areas)
                               or now - (live.oldest or now) >= self.policy.max_age_s)
        ]

    def written(self, partition: int) -> None:
        """The partition's dirty states are in the changelog."""
        live = self.partition(partition)
        live.dirty.clear()
        live.unwritten = 0
        live.oldest = None

    def dirty(self) -> list[int]:
        """Partitions with states not written yet (all of them are written on a clean stop)."""
        return [p for p, live in self._partitions.items() if live.dirty]

    def keep_only(self, partitions: set[int]) -> None:
        """Forget partitions this worker no longer holds: another worker may change them meanwhile."""
        for p in set(self._partitions) - partitions:
            del self._partitions[p]

    def keys(self) -> set[bytes]:
        """Keys of the areas held live, over all partitions."""
        return {key for live in self._partitions.values() for key in live.areas}
