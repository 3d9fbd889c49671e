"""The detector's wire formats: what its topics and tables carry as bytes, and back.

Every Faust topic and table of the detector is declared with the ``raw``
serializer, so Faust never guesses a codec: the bytes are the contracts of
``schemas/README.md`` (frames, archives, alerts: UTF-8 JSON through orjson)
and :meth:`AreaState.to_bytes` for the state. Keys are area ids (frames,
archives, state) or subject ids (alerts), UTF-8.

The ``archives`` table holds each area's archive record lz4-compressed
(:func:`pack_archive`): with ``memory://`` the table keeps every value in
the worker's memory, and the JSON, ~250 bytes per meter, shrinks about 13
times on the simulator's archives. Decoding an archive builds numpy arrays
for every meter, which is worth doing once per archive record rather than
once per frame: :class:`ArchiveCache` keeps the decoded archive next to
the bytes it came from and decodes again only when the table holds
different bytes.
"""

from __future__ import annotations

from typing import Any

import lz4.frame
import orjson

from services.detector.archive import AreaArchive, decode_archive
from services.detector.frame import AreaFrame, decode_frame

__all__ = ["area_key", "frame_from_bytes", "archive_from_bytes", "pack_archive", "archive_from_table", "alert_message",
           "ArchiveCache"]

_LZ4_MAGIC = b"\x04\x22\x4d\x18"  # the start of every lz4 frame; JSON starts with "{"


def area_key(area_id: str) -> bytes:
    """The key of an area's frames, archive and state records."""
    return area_id.encode()


def frame_from_bytes(value: bytes) -> AreaFrame:
    """An ``ami.frames`` message value, decoded (raises on anything that is not a frame)."""
    return decode_frame(orjson.loads(value))


def archive_from_bytes(value: bytes) -> AreaArchive:
    """An ``ami.archive`` message value, decoded (raises on anything that is not an archive)."""
    return decode_archive(orjson.loads(value))


def pack_archive(value: bytes) -> bytes:
    """The ``archives`` table's value for an ``ami.archive`` record: its JSON, lz4-compressed."""
    return lz4.frame.compress(value)


def archive_from_table(value: bytes) -> AreaArchive:
    """An ``archives`` table value, decoded; plain JSON too (a changelog written before compression)."""
    return archive_from_bytes(lz4.frame.decompress(value) if value.startswith(_LZ4_MAGIC) else value)


def alert_message(record: dict[str, Any]) -> tuple[bytes, bytes]:
    """Key (subject id) and value (the alert JSON) of an ``ami.alerts`` record."""
    return record["subject_id"].encode(), orjson.dumps(record)


class ArchiveCache:
    """Decoded archives by area key, valid while the archive bytes they came from are unchanged."""

    __slots__ = ("_decoded",)

    def __init__(self) -> None:
        self._decoded: dict[bytes, tuple[bytes, AreaArchive]] = {}

    def get(self, key: bytes, value: bytes) -> AreaArchive:
        """The archive ``value`` (the table's bytes for ``key``), decoded at most once per distinct value."""
        hit = self._decoded.get(key)
        if hit is not None and hit[0] == value:
            return hit[1]
        archive = archive_from_table(value)
        self._decoded[key] = (value, archive)
        return archive

    def forget(self, key: bytes) -> None:
        """Drop an area's decoded archive (its record was deleted)."""
        self._decoded.pop(key, None)
