"""Recount a run's summary from its raw messages and labels alone, as a plain consumer would.

This is the contract behind ``--summary``: everything it claims about the
raw stream can be reconstructed from the stream plus the labels (which
identify the deliberately bad readings), with nothing but ``json.loads``.
Tests use it on the raw.jsonl file and on the Kafka topic.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

__all__ = ["recount", "bad_reading_keys", "mismatches"]


def bad_reading_keys(labels: Iterable[dict[str, Any]]) -> tuple[set[str], set[tuple[str, str]]]:
    """Message refs and (meter_id, ts) pairs that identify the malformed readings."""
    params = [label["params"] for label in labels if label["kind"] == "malformed"]
    return {p["message_ref"] for p in params}, {(p["meter_id"], p["ts"]) for p in params if "meter_id" in p}


def recount(raw: Iterable[bytes], labels: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The summary's stream counts (same names), recomputed from raw message values."""
    refs, pairs = bad_reading_keys(labels)
    kinds: Counter[str] = Counter()
    items = area_items = bad_items = 0
    copies: Counter[tuple[str, str]] = Counter()
    area_readings: set[tuple[str, str]] = set()
    found_refs: set[str] = set()

    def bad(reading: dict[str, Any], ts: str | None) -> bool:
        meter = reading.get("meter_id")
        if meter in refs:
            found_refs.add(meter)
            return True
        return (meter, reading.get("ts", ts)) in pairs

    for value in raw:
        try:
            msg = json.loads(value)
        except ValueError:
            kinds["not_json"] += 1
            found_refs.update(ref for ref in refs if ref.encode() in value)
            continue
        kinds[msg["kind"]] += 1
        if msg["kind"] == "concentrator_upload":
            readings = msg["readings"]
            items += len(readings)
            good = [r for r in readings if not bad(r, msg["ts"])]
            bad_items += len(readings) - len(good)
            copies.update((r["meter_id"], msg["ts"]) for r in good)
            if "area_meter" in msg:
                area_items += 1
                area_readings.add((msg["area_id"], msg["ts"]))
        elif msg["kind"] == "meter_reading":
            items += 1
            if bad(msg, msg.get("ts")):
                bad_items += 1
            else:
                copies[(msg["meter_id"], msg["ts"])] += 1
        else:
            area_items += 1
            area_readings.add((msg["area_id"], msg["ts"]))
    return {
        "messages": {"total": sum(kinds.values()), "by_kind": dict(sorted(kinds.items()))},
        "reading_items": items,
        "area_meter_items": area_items,
        "readings": len(copies),
        "area_meter_readings": len(area_readings),
        "repeated_readings": sum(copies.values()) - len(copies),
        "malformed_items": bad_items,
        "refs_found": found_refs,
    }


def mismatches(summary: dict[str, Any], counts: dict[str, Any]) -> list[str]:
    """Where a summary disagrees with a recount of its stream (empty when they agree)."""
    dup = summary["duplicates"]
    checks = {
        "messages": (summary["messages"], counts["messages"]),
        "reading_items": (summary["reading_items"], counts["reading_items"]),
        "area_meter_items": (summary["area_meter_items"], counts["area_meter_items"]),
        "readings": (summary["readings"], counts["readings"]),
        "area_meter_readings": (summary["area_meter_readings"], counts["area_meter_readings"]),
        "duplicates": (dup["identical_readings"] + dup["conflicting"], counts["repeated_readings"]),
        "malformed.items": (summary["malformed"]["items"], counts["malformed_items"]),
    }
    return [f"{name}: summary {a!r} != stream {b!r}" for name, (a, b) in checks.items() if a != b]
