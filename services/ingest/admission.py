"""The checks whose verdict depends on state: the newest event time seen and the archive.

Run after :mod:`services.ingest.validation`, in this order, first failure
decides: ``future_timestamp`` (more than :data:`AHEAD_OF_DATA_S` ahead of the
newest event time this partition has accepted, or more than
:data:`AHEAD_OF_WALL_S` ahead of the wall clock), ``unknown_area``,
``unknown_meter``.

Event time, not the wall clock, is the main yardstick so a replay of old
data judges it as the live stream did; the wall-clock bound only catches a
clock years off when there is no data yet to compare with. Because the
verdicts depend on state that moves on (the archive changes, the newest
time grows), they are never re-taken on a replay: a message replayed from
the checkpoint reuses the rejections recorded there.

For an upload, the area and ts its readings inherit are judged once: a
fault there rejects the whole message in one dead letter.
"""

from __future__ import annotations

from services.ingest.archive_view import ArchiveView
from services.ingest.normalise import Reading, format_time
from services.ingest.validation import Parsed, Rejection

__all__ = ["AHEAD_OF_DATA_S", "AHEAD_OF_WALL_S", "admit", "admit_one"]

AHEAD_OF_DATA_S = 3600
AHEAD_OF_WALL_S = 86_400


def _future(ts: int, newest: int | None, now: float) -> str | None:
    if newest is not None and ts > newest + AHEAD_OF_DATA_S:
        ahead = (ts - newest) / 3600
        return f"ts {format_time(ts)} is {ahead:.2f} h ahead of the newest data seen ({format_time(newest)})"
    if ts > now + AHEAD_OF_WALL_S:
        return f"ts {format_time(ts)} is more than {AHEAD_OF_WALL_S // 3600} h ahead of the wall clock"
    return None


def _verdict(
    reading: Reading, archive: ArchiveView, newest: int | None, now: float, *, ts: bool, area: bool
) -> tuple[str, str] | None:
    if ts and (why := _future(reading.ts, newest, now)):
        return "future_timestamp", why
    known = archive.get(reading.area_id)
    if known is None:
        return ("unknown_area", f"area {reading.area_id} is not in the archive") if area else None
    if not known.knows(reading.meter_id, reading.is_area_meter):
        if reading.is_area_meter:
            return (
                "unknown_meter",
                f"{reading.meter_id} is not the archived area meter of {reading.area_id} ({known.area_meter_id})",
            )
        return "unknown_meter", f"meter {reading.meter_id} is not in the archive of area {reading.area_id}"
    return None


def admit_one(reading: Reading, archive: ArchiveView, newest: int | None, now: float) -> Rejection | None:
    """What :func:`admit` says of a single-reading message's valid reading: None (accepted) or its rejection."""
    verdict = _verdict(reading, archive, newest, now, ts=True, area=True)
    return None if verdict is None else _rejection(reading, verdict)


def _rejection(reading: Reading, verdict: tuple[str, str]) -> Rejection:
    return Rejection(verdict[0], verdict[1], index=reading.index, meter_id=reading.meter_id, area_id=reading.area_id)


def admit(
    parsed: Parsed, archive: ArchiveView, newest: int | None, now: float
) -> tuple[list[Reading], list[Rejection]]:
    """(accepted readings, rejections) of a validated message; ``parsed.rejections`` come first."""
    rejections = list(parsed.rejections)
    if parsed.envelope is not None:
        area_id, ts = parsed.envelope
        why = _future(ts, newest, now)
        if why:
            return [], [Rejection("future_timestamp", why, area_id=area_id)]
        if archive.get(area_id) is None:
            return [], [Rejection("unknown_area", f"area {area_id} is not in the archive", area_id=area_id)]
    accepted: list[Reading] = []
    for reading in parsed.readings:
        own_ts = parsed.envelope is None or reading.ts != parsed.envelope[1]
        own_area = parsed.envelope is None or reading.area_id != parsed.envelope[0]
        verdict = _verdict(reading, archive, newest, now, ts=own_ts, area=own_area)
        if verdict is None:
            accepted.append(reading)
            continue
        rejections.append(_rejection(reading, verdict))
    return accepted, rejections
