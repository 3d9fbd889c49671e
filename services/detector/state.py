"""AreaState: everything the detector keeps about one area between frames, and its compact bytes.

Where state lives: one ``AreaState`` per area, held by the caller (the
detector worker's memory, written to a Faust table keyed by area id at
checkpoints, see ``services/detector/checkpoint.py``; a dict in backtest), so
the changelog carries one record per area rather than one per meter. A frame
already folded in (``recent_frames``: a re-delivered revision) is recognised
and skipped, so a re-delivery cannot double-count.

Layout. ``groups`` maps a name to a dict of numpy arrays: ``"pipeline"`` (the
pipeline's registers, the buffered day's interval profile and aggregates, see
``services/detector/pipeline.py``) and one group per detector (its
``init_state``). In every group, an array whose key starts with ``area_`` is
area-level; every other array is per meter: its first axis is aligned with
``meter_ids`` (the archive's order) and follows the archive when meters are
added, removed or reordered (:meth:`AreaState.realign`). Arrays use float32
where seven significant digits suffice (energies of one interval or one day)
and float64 only for registers and epoch times; the budget is ≤ 1 KiB per
meter across all groups (measured by :meth:`AreaState.bytes_per_meter`).

Bytes: ``b"AMWS"``, a version byte, a little-endian u32 header length, an
orjson header (scalars, meter ids, open alerts, the buffered events and an array
directory), then each array's raw bytes, 8-byte aligned. No pickle: the format
is readable by anything that can parse JSON and numpy buffers.

The directory (version 2) lists, per group, ``[key, dtype, dims]`` in the
order of the bytes: ``dims`` is the shape after the first axis for a
per-meter array (whose first axis is the meter count) and the whole shape
for an area-level one; each array starts at the next multiple of 8 after
the previous one. That is about 20 B an array, a quarter of version 1's
(which repeated the group's name, the meter count and an explicit offset:
about 4 KB an area, 41 B a meter at 100 meters an area). Version 1 records,
written by earlier releases, are still read.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import orjson

from services.detector.alerts import AlertBook
from services.detector.frame import MeterEvent

__all__ = ["AreaState", "Arrays", "remap_rows", "is_area_key"]

Arrays = dict[str, np.ndarray]

_MAGIC = b"AMWS"
_VERSION = 2
_READS = (1, 2)
_HEAD = struct.Struct("<4sBI")

_Entry = tuple[str, str, str, tuple[int, ...], int]
"""An array in the record: (group, key, dtype, shape, byte offset in the body)."""


def _padded(nbytes: int) -> int:
    return nbytes + (-nbytes % 8)


def _directory_v1(arrays: list[list[object]]) -> list[_Entry]:
    return [(str(g), str(k), str(dt), tuple(shape), int(off)) for g, k, dt, shape, off in arrays]  # type: ignore[arg-type]


def _directory_v2(arrays: dict[str, list[list[object]]], n: int) -> list[_Entry]:
    entries: list[_Entry] = []
    offset = 0
    for name, listed in arrays.items():
        for key, dtype, dims in listed:
            shape = tuple(dims) if is_area_key(str(key)) else (n, *dims)  # type: ignore[misc]
            entries.append((name, str(key), str(dtype), shape, offset))
            offset += _padded(int(np.prod(shape, dtype=np.int64)) * np.dtype(str(dtype)).itemsize)
    return entries


def is_area_key(key: str) -> bool:
    """Whether an array of a state group is area-level (not aligned with the meters)."""
    return key.startswith("area_")


def remap_rows(old: Arrays, fresh: Arrays, src: np.ndarray) -> Arrays:
    """Per-meter arrays of ``fresh`` filled from ``old`` where ``src`` (new row → old row, -1 new) says.

    ``fresh`` comes from the group's ``init_state(n_new)``, so rows of meters new
    to the area hold exactly the initial values; area-level arrays are carried
    over unchanged; arrays whose trailing shape changed start fresh.
    """
    have = src >= 0
    out: Arrays = {}
    for key, new in fresh.items():
        prev = old.get(key)
        if prev is None or prev.dtype != new.dtype:
            out[key] = new
        elif is_area_key(key):
            out[key] = prev
        elif prev.shape[1:] == new.shape[1:]:
            new[have] = prev[src[have]]
            out[key] = new
        else:
            out[key] = new
    return out


@dataclass(slots=True, eq=False)
class AreaState:
    """One area's detector state (see the module docstring for layout and bytes)."""

    area_id: str
    meter_ids: tuple[str, ...] = ()
    interval_minutes: int = 0  # interval of the open day's profile; 0 before the first frame
    day_start: int = -1  # epoch s of the open day's UTC midnight; -1 before the first frame
    first_ts: int = -1  # the first frame's interval end (event time): the stream's start
    watermark: int = -1  # latest frame end (event time) processed
    groups: dict[str, Arrays] = field(default_factory=dict)
    events: list[tuple[int, MeterEvent]] = field(default_factory=list)  # (frame interval end, event), buffered days
    recent_frames: list[tuple[int, int]] = field(
        default_factory=list
    )  # (ts, revision) folded in, open and previous day
    alerts: AlertBook = field(default_factory=AlertBook)

    @property
    def n(self) -> int:
        """Number of meters the per-meter arrays hold."""
        return len(self.meter_ids)

    def realign(self, meter_ids: tuple[str, ...], fresh: Mapping[str, Callable[[int], Arrays]]) -> None:
        """Follow a new archive meter list; ``fresh[group](n)`` gives a group's initial arrays.

        Meters kept keep their rows' values, new meters get initial values,
        removed meters are dropped; groups not named in ``fresh`` are dropped.
        """
        where = {m: i for i, m in enumerate(self.meter_ids)}
        src = np.fromiter((where.get(m, -1) for m in meter_ids), dtype=np.int64, count=len(meter_ids))
        self.groups = {
            name: remap_rows(self.groups.get(name, {}), init(len(meter_ids)), src) for name, init in fresh.items()
        }
        self.meter_ids = tuple(meter_ids)

    def nbytes(self) -> int:
        """Bytes held in arrays (per-meter and area-level)."""
        return sum(a.nbytes for g in self.groups.values() for a in g.values())

    def bytes_per_meter(self) -> dict[str, int]:
        """Per-meter array bytes of each group (row size), the figure the 1 KiB budget is about."""
        return {
            name: sum(a[:1].nbytes for k, a in g.items() if not is_area_key(k) and len(a))
            for name, g in self.groups.items()
        }

    def to_bytes(self) -> bytes:
        """Compact serialisation (see module docstring); :meth:`from_bytes` inverts it exactly."""
        directory: dict[str, list[list[object]]] = {}
        chunks: list[bytes] = []
        for name in sorted(self.groups):
            if not self.groups[name]:
                continue  # a group without arrays has nothing to restore
            listed = directory[name] = []
            for key in sorted(self.groups[name]):
                arr = np.ascontiguousarray(self.groups[name][key])
                if not is_area_key(key) and arr.shape[:1] != (self.n,):
                    raise ValueError(f"{name}.{key}: shape {arr.shape} is not per meter ({self.n} meters)")
                raw = arr.tobytes()
                listed.append([key, arr.dtype.str, list(arr.shape if is_area_key(key) else arr.shape[1:])])
                chunks.append(raw + b"\0" * (-len(raw) % 8))
        header = orjson.dumps(
            {
                "area_id": self.area_id,
                "meter_ids": self.meter_ids,
                "interval_minutes": self.interval_minutes,
                "day_start": self.day_start,
                "first_ts": self.first_ts,
                "watermark": self.watermark,
                "events": [[t, e.meter_id, e.code, e.at] for t, e in self.events],
                "recent_frames": self.recent_frames,
                "alerts": self.alerts.to_state(),
                "arrays": directory,
            }
        )
        pad = -(_HEAD.size + len(header)) % 8
        return b"".join([_HEAD.pack(_MAGIC, _VERSION, len(header) + pad), header, b" " * pad, *chunks])

    @classmethod
    def from_bytes(cls, data: bytes) -> AreaState:
        """The state :meth:`to_bytes` wrote, in this version or an earlier one (arrays are writable views
        into one copy of ``data``)."""
        magic, version, hlen = _HEAD.unpack_from(data)
        if magic != _MAGIC or version not in _READS:
            raise ValueError(f"not an AreaState record of version {_READS} (magic {magic!r}, version {version})")
        head = orjson.loads(data[_HEAD.size : _HEAD.size + hlen])
        body = bytearray(data[_HEAD.size + hlen :])
        if version == 1:
            entries = _directory_v1(head["arrays"])
        else:
            entries = _directory_v2(head["arrays"], len(head["meter_ids"]))
        groups: dict[str, Arrays] = {}
        for name, key, dtype, shape, offset in entries:
            count = int(np.prod(shape, dtype=np.int64))
            groups.setdefault(name, {})[key] = np.frombuffer(body, dtype=dtype, count=count, offset=offset).reshape(shape)
        return cls(
            area_id=head["area_id"],
            meter_ids=tuple(head["meter_ids"]),
            interval_minutes=head["interval_minutes"],
            day_start=head["day_start"],
            first_ts=head["first_ts"],
            watermark=head["watermark"],
            groups=groups,
            events=[(t, MeterEvent(m, c, at)) for t, m, c, at in head["events"]],
            recent_frames=[(ts, rev) for ts, rev in head["recent_frames"]],
            alerts=AlertBook.from_state(head["alerts"]),
        )
