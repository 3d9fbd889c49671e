"""Deliberately bad raw messages, one flavour per dead-letter reason (schemas/README.md).

Each carries its label's ``message_ref`` where the contract leaves room
for it without changing the reason it must be rejected for: as the
meter id (schema, unknown_meter, unknown_area), the area id (unknown_area) or in the
text (not_json). Readings that must keep a real meter id to fail for
the right reason (nan, negative_energy, unknown_unit, future and
misaligned timestamps) are matched by their label's ``meter_id`` and
``ts`` instead.

NaN cannot be produced by a JSON encoder, so such items carry a sentinel
string that ``finish`` swaps for the bare ``NaN`` token after encoding.
"""

from __future__ import annotations

from typing import Any

from simulators.faults import Malformed
from simulators.messages import AreaDayMessages
from simulators.timegrid import iso

__all__ = ["NAN_SENTINEL", "bad_item", "bad_message", "finish", "message_ts", "written_epoch"]

NAN_SENTINEL = "__amiwatch_nan__"
_NAN_BYTES = f'"{NAN_SENTINEL}"'.encode()
FUTURE_S = 86400  # a day ahead: far beyond ingest's one-hour tolerance


def finish(raw: bytes) -> bytes:
    """Encoded JSON with the NaN sentinel turned into a literal ``NaN`` token."""
    return raw.replace(_NAN_BYTES, b"NaN") if _NAN_BYTES in raw else raw


def written_epoch(reason: str, interval_end: int, interval_s: int) -> int:
    """The ``ts`` (epoch) a bad message of ``reason`` carries for the interval ending at ``interval_end``."""
    if reason == "future_timestamp":
        return interval_end + FUTURE_S
    if reason == "misaligned_timestamp":
        return interval_end + interval_s * 2 // 5  # 40 % off the boundary; ingest tolerates 10 %
    return interval_end


def message_ts(mal: Malformed, msgs: AreaDayMessages, k: int) -> str:
    """The ``ts`` the bad message carries."""
    return iso(written_epoch(mal.reason, msgs.day.ts_epoch(k), msgs.day.interval_s))


def bad_item(mal: Malformed, msgs: AreaDayMessages, k: int) -> dict[str, Any]:
    """The reading item of a bad reading (inside an upload, or wrapped into a standalone message)."""
    if mal.meter is None:
        item = msgs.item(k, 0)
        item.pop("events", None)
        item["meter_id"] = mal.ref
        return item
    item = msgs.item(k, mal.meter)
    if mal.reason == "nan":
        item["energy"] = NAN_SENTINEL
    elif mal.reason == "negative_energy":
        item["energy"] = -round(item["energy"] + 0.1, 4)
    elif mal.reason == "unknown_unit":
        item["unit"] = "MWh"
        item["energy"] = item["energy"] / 1000.0
        for register in ("register_fwd", "register_rev"):
            if register in item:
                item[register] = item[register] / 1000.0
    elif mal.reason in ("future_timestamp", "misaligned_timestamp"):
        item["meter_time"] = message_ts(mal, msgs, k)
    return item


def bad_message(mal: Malformed, msgs: AreaDayMessages, k: int) -> tuple[str, bytes | dict[str, Any]]:
    """``(key, message)`` of a standalone bad message: raw bytes for not_json, else a dict to encode."""
    ts = message_ts(mal, msgs, k)
    area = msgs.area_id
    if mal.reason == "not_json":
        if mal.variant % 2 == 0:  # cut off mid-number, as a dropped TCP segment leaves it
            text = f'{{"kind":"meter_reading","meter_id":"{mal.ref}","area_id":"{area}","ts":"{ts}","energy":0.4'
        else:
            text = f"ERR {mal.ref} concentrator {msgs.day.fleet.concentrator_id} buffer overflow"
        return area, text.encode()
    message = msgs.standalone_dict("meter_reading", ts, bad_item(mal, msgs, k))
    if mal.reason == "schema":
        flavour = mal.variant % 4
        if flavour == 0:
            del message["ts"]
        elif flavour == 1:
            message["interval_minutes"] = 7
        elif flavour == 2:
            message["energy"] = str(message["energy"])
        else:
            for name in ("energy", "register_fwd", "register_rev"):
                message.pop(name, None)
    elif mal.reason == "unknown_area":
        message["area_id"] = mal.ref
        return mal.ref, message
    return area, message
