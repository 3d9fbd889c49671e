"""Readings → canonical area frames, on event time only.

A frame is one area × one interval (keyed by area, interval end and interval
length). :class:`FrameAssembler` keeps the open frames of one input
partition and closes each one, exactly once, when the first of these holds:

``complete``
    every active archived customer meter and the archived area meter have
    reported (checked after each message), and no older frame of the area
    (same interval length) is still open: an area's frames leave in ts
    order, so a gap holds the complete frames behind it for at most the
    grace period;
``grace``
    the area's watermark (its newest reading's interval end) has passed
    ``ts + grace_intervals × interval``, or the partition's newest event
    time has passed ``ts + stale_s`` (an area that fell silent must not hold
    its last frames, and the checkpoint's committed offset, forever);
``idle``
    an explicit :meth:`FrameAssembler.flush` (input idle, ``--exit-when-idle``).

A reading whose frame is closed, or due to be (its grace has passed), is
late: it goes out at once as a correction frame (``revision`` n+1,
``closed_by: "late"``) holding the late readings of that one message for
that frame; never dropped. The exception is an identical re-send of a
reading already sent in a remembered closed frame (a concentrator re-sending
an upload right after it completed the frame): a digest of every reading
sent is kept, and checkpointed, for as long as the frame is remembered, so
the re-send is dropped and counted like any duplicate and each reading
reaches the frames topic once. Readings of one meter delivered twice to an open
frame: identical ones are dropped and counted, differing ones keep the
first value and list the other in ``conflicts``. Events are merged.

Determinism: every decision depends on the input order only (the wall clock
enters only through :meth:`flush`), so a replay of the same input from a
checkpoint rebuilds the same open frames and closes them as the first run
would have. The state a checkpoint needs is :meth:`open_offsets` and the
:meth:`marks` (watermarks, open frame keys, closed frames' revisions) of the
areas :meth:`take_changed` names. Closed frames are remembered while
corrections to them may still need a revision number: revision-0 frames
until their grace has passed (after that a reading is late anyway),
corrected frames for ``horizon_s`` of event time.
A correction to a frame older than that starts again at revision 1.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from itertools import islice
from typing import Any

import numpy as np

from services.ingest.archive_view import ArchiveView
from services.ingest.checkpoint import AreaMark
from services.ingest.normalise import COLUMNS, Reading, format_time

__all__ = ["CLOSED_BY", "OpenFrame", "FrameAssembler", "encode_frame", "reading_digest"]

CLOSED_BY: tuple[str, ...] = ("complete", "grace", "idle", "late")

_AREA_METER_COLUMNS = COLUMNS[:3]


_DIGEST_OFFSETS = np.arange(1, len(COLUMNS) + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
"""One 64-bit offset per column (multiples of the golden ratio's), so equal values in different columns
hash apart. Fixed, as digests are checkpointed and compared across restarts."""


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place: a bijection of uint64 whose every input bit reaches every output bit."""
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _row_digests(rows: list[tuple[float | None, ...]]) -> list[int]:
    """32-bit digests of readings' values (rows of equal length, None as NaN), all in one numpy pass.

    Each value's float64 bits plus its column's offset are mixed (a
    bijection: a changed value changes its term), the terms summed per row
    (mod 2**64) and mixed again; the low 32 bits are kept. A NaN value
    cannot occur (validation rejects them), so None and NaN cannot be
    confused. Digests made by releases before this one (a CRC of the
    values' repr) do not match these: after an upgrade, an identical
    re-send of a frame closed before it goes out as a correction with the
    same values instead of being dropped.
    """
    terms = _mix64(np.array(rows, dtype=np.float64).view(np.uint64) + _DIGEST_OFFSETS[: len(rows[0])])
    return (_mix64(terms.sum(axis=1, dtype=np.uint64)) & np.uint64(0xFFFFFFFF)).tolist()


def reading_digest(values: tuple[float | None, ...]) -> int:
    """A 32-bit digest of one reading's values: enough to tell a re-send from a different value."""
    return _row_digests([values])[0]


def _digests(rows: dict[str, tuple[float | None, ...]]) -> dict[str, int]:
    """``{meter: reading_digest(values)}`` for a frame's rows."""
    return dict(zip(rows, _row_digests(list(rows.values())), strict=True)) if rows else {}


class OpenFrame:
    """The readings gathered so far for one area × interval, and the input offsets they came from."""

    __slots__ = (
        "area_id",
        "ts",
        "interval_minutes",
        "rows",
        "area_meter",
        "events",
        "conflicts",
        "duplicates",
        "offsets",
        "_active",
        "_counted",
        "_hits",
    )

    def __init__(self, area_id: str, ts: int, interval_minutes: int) -> None:
        self.area_id = area_id
        self.ts = ts
        self.interval_minutes = interval_minutes
        self.rows: dict[str, tuple[float | None, ...]] = {}
        self.area_meter: tuple[str, tuple[float | None, ...]] | None = None
        self.events: dict[tuple[str, str, str], None] = {}  # (meter, code, at), insertion-ordered set
        self.conflicts: list[dict[str, Any]] = []
        self.duplicates = 0
        self.offsets: list[int] = []  # ascending: input is consumed in offset order
        # Completeness, counted as rows arrive (see :meth:`active_reported`): the active set counted
        # against, how many rows were counted, and how many of those are in it.
        self._active: frozenset[str] | None = None
        self._counted = 0
        self._hits = 0

    @property
    def key(self) -> tuple[int, int]:
        """(ts, interval_minutes): the frame's key within its area."""
        return (self.ts, self.interval_minutes)

    def _merge(
        self, meter_id: str, kept: tuple[float | None, ...], other: tuple[float | None, ...], names: tuple[str, ...]
    ) -> None:
        if kept == other:
            self.duplicates += 1
            return
        for name, k, o in zip(names, kept, other, strict=True):
            if k != o:
                self.conflicts.append({"meter_id": meter_id, "field": name, "kept": k, "other": o})

    def add(self, reading: Reading, offset: int) -> None:
        """Take one reading delivered at input ``offset``."""
        if not self.offsets or self.offsets[-1] != offset:
            self.offsets.append(offset)
        if reading.is_area_meter:
            values = reading.values[:3]
            if self.area_meter is None:
                self.area_meter = (reading.meter_id, values)
            else:
                self._merge(reading.meter_id, self.area_meter[1], values, _AREA_METER_COLUMNS)
        else:
            kept = self.rows.get(reading.meter_id)
            if kept is None:
                self.rows[reading.meter_id] = reading.values
            else:
                self._merge(reading.meter_id, kept, reading.values, COLUMNS)
        for code, at in reading.events:
            self.events[(reading.meter_id, code, at)] = None

    def active_reported(self, active: frozenset[str]) -> int:
        """How many meters of ``active`` have a row: ``len(active & rows)``, counting only the rows
        added since the last call with the same ``active`` (rows are never removed)."""
        rows = self.rows
        if self._active is not active:
            self._active, self._counted, self._hits = active, 0, 0
        self._hits += sum(meter_id in active for meter_id in islice(reversed(rows), len(rows) - self._counted))
        self._counted = len(rows)
        return self._hits

    def digests(self) -> dict[str, int]:
        """Per meter (area meter included), the digest of the values this frame sends."""
        sent = _digests(self.rows)
        if self.area_meter is not None:
            sent[self.area_meter[0]] = reading_digest(self.area_meter[1])
        return sent


def encode_frame(frame: OpenFrame, revision: int, closed_by: str, missing: list[str]) -> dict[str, Any]:
    """The frame as the contract's columnar ``area_frame`` (meters sorted by id)."""
    ids = sorted(frame.rows)
    columns = list(zip(*(frame.rows[m] for m in ids), strict=True)) if ids else [()] * len(COLUMNS)
    ts = format_time(frame.ts)
    area_meter = None
    if frame.area_meter is not None:
        meter_id, values = frame.area_meter
        area_meter = {"meter_id": meter_id, **dict(zip(_AREA_METER_COLUMNS, values, strict=True))}
    return {
        "frame_id": f"{frame.area_id}|{ts}|{revision}",
        "area_id": frame.area_id,
        "ts": ts,
        "interval_minutes": frame.interval_minutes,
        "revision": revision,
        "closed_by": closed_by,
        "area_meter": area_meter,
        "meters": {"meter_id": ids, **{name: list(col) for name, col in zip(COLUMNS, columns, strict=True)}},
        "events": [
            {"meter_id": m, "code": code, "at": at}
            for m, code, at in sorted(frame.events, key=lambda e: (e[2], e[0], e[1]))
        ],
        "missing": missing,
        "conflicts": frame.conflicts,
        "stats": {"readings": len(frame.rows) + (frame.area_meter is not None), "duplicates_dropped": frame.duplicates},
    }


class _Area:
    __slots__ = ("watermark", "open", "closed", "sent")

    def __init__(
        self,
        watermark: int | None = None,
        closed: dict[tuple[int, int], int] | None = None,
        sent: dict[tuple[int, int], dict[str, int]] | None = None,
    ) -> None:
        self.watermark = watermark
        self.open: dict[tuple[int, int], OpenFrame] = {}
        self.closed: dict[tuple[int, int], int] = closed if closed is not None else {}
        self.sent: dict[tuple[int, int], dict[str, int]] = sent if sent is not None else {}

    def already_sent(self, key: tuple[int, int], reading: Reading) -> bool:
        """Whether this exact reading went out in the remembered closed frame ``key``."""
        sent = self.sent.get(key)
        return sent is not None and sent.get(reading.meter_id) == reading_digest(
            reading.values[:3] if reading.is_area_meter else reading.values
        )


class FrameAssembler:
    """Open frames, watermarks and recently closed frames of one input partition (see the module docstring).

    ``archive`` is consulted when a frame may close (completeness) and when
    it does (``missing``).
    """

    __slots__ = (
        "_archive",
        "_grace",
        "_stale_s",
        "_horizon_s",
        "_areas",
        "_heap",
        "_seq",
        "_changed",
        "newest",
        "open_count",
        "late_duplicates",
    )

    def __init__(
        self,
        archive: ArchiveView,
        *,
        grace_intervals: int = 2,
        stale_s: int = 6 * 3600,
        horizon_s: int = 7 * 86_400,
    ) -> None:
        if grace_intervals < 0:
            raise ValueError("grace_intervals must be >= 0")
        self._archive = archive
        self._grace = grace_intervals
        self._stale_s = stale_s
        self._horizon_s = horizon_s
        self._areas: dict[str, _Area] = {}
        self._heap: list[tuple[int, int, str, tuple[int, int]]] = []  # (ts, seq, area, key) of opened frames
        self._seq = 0
        self._changed: set[str] = set()  # areas whose mark changed since the last checkpoint took them
        self.newest: int | None = None
        self.open_count = 0
        self.late_duplicates = 0  # identical re-sends of closed frames dropped (metrics read and reset it)

    # -- decisions -----------------------------------------------------------------

    def _due(self, area: _Area, key: tuple[int, int]) -> bool:
        ts, interval = key
        return area.watermark is not None and area.watermark > ts + self._grace * interval * 60

    def _area(self, area_id: str) -> _Area:
        area = self._areas.get(area_id)
        if area is None:
            area = self._areas[area_id] = _Area()
        return area

    def _open(self, area: _Area, reading: Reading) -> OpenFrame:
        frame = area.open[(reading.ts, reading.interval_minutes)] = OpenFrame(
            reading.area_id, reading.ts, reading.interval_minutes
        )
        self._seq += 1
        self._changed.add(reading.area_id)
        heapq.heappush(self._heap, (reading.ts, self._seq, reading.area_id, frame.key))
        self.open_count += 1
        return frame

    def _close(self, area: _Area, frame: OpenFrame, closed_by: str) -> dict[str, Any]:
        del area.open[frame.key]
        area.closed[frame.key] = 0
        area.sent[frame.key] = frame.digests()
        self._changed.add(frame.area_id)
        self.open_count -= 1
        archived = self._archive.get(frame.area_id)
        missing = archived.missing(frame.rows) if archived is not None else []
        return encode_frame(frame, 0, closed_by, missing)

    def _complete(self, frame: OpenFrame) -> bool:
        archived = self._archive.get(frame.area_id)
        return archived is not None and archived.complete(
            frame.active_reported(archived.active), frame.area_meter is not None
        )

    def _may_be_complete(self, frame: OpenFrame) -> bool:
        """A cheap necessary condition for :meth:`_complete`: as many rows as the area has active meters.

        With the watermark unmoved, no frame fell due and nothing can close
        unless the frame that took the reading became complete, so the
        area's :meth:`_release` (per message, the hot path) is skipped.
        """
        archived = self._archive.get(frame.area_id)
        return archived is not None and len(frame.rows) >= len(archived.active)

    def _release(self, area_id: str, area: _Area) -> list[dict[str, Any]]:
        """Close what may close in the area, oldest first per interval length; forget what no correction needs.

        A frame past its grace closes (``grace``); a complete frame closes
        (``complete``) once no older frame of the same interval length is
        still open, so an area's frames go out in ts order and the detector's
        sequence rules see them in order. A gap therefore holds the complete
        frames behind it for at most the grace period, and re-sends into a
        held frame are merged, not corrections.
        """
        out = []
        waiting: set[int] = set()  # interval lengths with an older frame still open
        for key in sorted(area.open):
            if key[1] in waiting:
                continue  # not due either: due-ness only falls with a later ts
            frame = area.open[key]
            if self._due(area, key):
                out.append(self._close(area, frame, "grace"))
            elif self._complete(frame):
                out.append(self._close(area, frame, "complete"))
            else:
                waiting.add(key[1])
        horizon = (area.watermark or 0) - self._horizon_s
        for key, revision in list(area.closed.items()):
            if (revision == 0 and self._due(area, key)) or key[0] < horizon:
                del area.closed[key]
                area.sent.pop(key, None)
                self._changed.add(area_id)
        return out

    def _sweep_stale(self) -> list[tuple[_Area, dict[str, Any]]]:
        """Close frames whose interval lies more than ``stale_s`` behind the partition's newest event time."""
        out = []
        while self._heap and self.newest is not None and self.newest > self._heap[0][0] + self._stale_s:
            _, _, area_id, key = heapq.heappop(self._heap)
            area = self._areas[area_id]
            frame = area.open.get(key)
            if frame is not None:
                out.append((area, self._close(area, frame, "complete" if self._complete(frame) else "grace")))
        return out

    # -- input ---------------------------------------------------------------------

    def add(self, readings: Iterable[Reading], offset: int) -> list[dict[str, Any]]:
        """Take the accepted readings of the message at ``offset``; return the frames this closes."""
        touched: dict[str, _Area] = {}
        late: dict[tuple[str, int, int], OpenFrame] = {}
        for reading in readings:
            area = self._area(reading.area_id)
            key = (reading.ts, reading.interval_minutes)
            frame = area.open.get(key)
            if frame is None:
                if key in area.closed or self._due(area, key):
                    if area.already_sent(key, reading):
                        self.late_duplicates += 1
                        continue
                    correction = late.get(reading.frame_key)
                    if correction is None:
                        correction = late[reading.frame_key] = OpenFrame(
                            reading.area_id, reading.ts, reading.interval_minutes
                        )
                    correction.add(reading, offset)
                    continue
                frame = self._open(area, reading)
            frame.add(reading, offset)
            if area.watermark is None or reading.ts > area.watermark:
                area.watermark = reading.ts
                self._changed.add(reading.area_id)
                touched[reading.area_id] = area
            elif self._may_be_complete(frame):
                touched[reading.area_id] = area
            if self.newest is None or reading.ts > self.newest:
                self.newest = reading.ts
        out = []
        for (area_id, ts, interval), correction in late.items():
            closed = self._areas[area_id].closed
            revision = closed[(ts, interval)] = closed.get((ts, interval), 0) + 1
            self._areas[area_id].sent.setdefault((ts, interval), {}).update(correction.digests())
            self._changed.add(area_id)
            out.append(encode_frame(correction, revision, "late", []))
        for area, frame in self._sweep_stale():
            out.append(frame)
            touched[frame["area_id"]] = area
        for area_id, area in touched.items():
            out.extend(self._release(area_id, area))
        return out

    def rebuild(self, readings: Iterable[Reading], offset: int) -> None:
        """Put replayed readings back into their open frames: no closing, no corrections, no watermark moves."""
        for reading in readings:
            area = self._area(reading.area_id)
            frame = area.open.get((reading.ts, reading.interval_minutes)) or self._open(area, reading)
            frame.add(reading, offset)

    def close_due(self) -> list[dict[str, Any]]:
        """Close whatever the restored state says should close (after a replay; the archive may have moved)."""
        out = [frame for _, frame in self._sweep_stale()]
        for area_id, area in self._areas.items():
            out.extend(self._release(area_id, area))
        return out

    def flush(self) -> list[dict[str, Any]]:
        """Close every open frame now, in order: ``complete`` if it is, else ``idle`` (input idle, or exit)."""
        out = []
        for area_id in sorted(self._areas):
            area = self._areas[area_id]
            for key in sorted(area.open):
                frame = area.open[key]
                out.append(self._close(area, frame, "complete" if self._complete(frame) else "idle"))
        self._heap.clear()
        return out

    # -- checkpoint ----------------------------------------------------------------

    def first_open_offset(self) -> int | None:
        """The smallest input offset held by an open frame (the committed offset can go no further)."""
        firsts = [frame.offsets[0] for area in self._areas.values() for frame in area.open.values()]
        return min(firsts) if firsts else None

    def open_offsets(self) -> set[int]:
        """Every input offset held by an open frame."""
        return {o for area in self._areas.values() for frame in area.open.values() for o in frame.offsets}

    def area_ids(self) -> list[str]:
        """The areas a checkpoint must list: every one with a watermark."""
        return [area_id for area_id, area in self._areas.items() if area.watermark is not None]

    def take_changed(self) -> set[str]:
        """The areas whose mark changed since the last call: what the next checkpoint must write."""
        changed, self._changed = self._changed, set()
        return changed

    def marks(self, area_ids: Iterable[str] | None = None) -> dict[str, AreaMark]:
        """Per area (all, or ``area_ids``): watermark, open frame keys, closed frames' revisions and sent digests."""
        return {
            area_id: AreaMark(
                area.watermark,
                area.open.keys(),
                ((ts, iv, rev) for (ts, iv), rev in area.closed.items()),
                area.sent,
            )
            for area_id in (self._areas if area_ids is None else area_ids)
            if (area := self._areas[area_id]).watermark is not None
        }

    def restore(self, marks: dict[str, AreaMark], newest: int | None) -> None:
        """Start from a checkpoint's state; its open frames come back through :meth:`rebuild`.

        Every area counts as changed, so the first checkpoint after a restore
        rewrites them all and no earlier record is needed again.
        """
        self._areas = {
            area_id: _Area(
                mark.watermark,
                {(ts, iv): rev for ts, iv, rev in mark.closed},
                {key: dict(sent) for key, sent in mark.sent.items()},
            )
            for area_id, mark in marks.items()
        }
        self._changed = set(self._areas)
        self._heap = []
        self.newest = newest
        self.open_count = 0
