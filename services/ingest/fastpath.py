"""A sound shortcut past JSON Schema for the common case: raw input that is certainly valid.

jsonschema needs about half a millisecond per reading, two thousand readings
a second per core; these hand-written checks need a few microseconds. They
are *sound* rather than complete: a ``True`` means the schema accepts the
object, a ``False`` only means "ask the schema", which stays the single
authority on what is valid and on the wording of every rejection
(:mod:`services.ingest.validation`). So a check that is too strict costs
speed, never correctness; one that is too lenient would break the contract,
which ``tests/unit/test_ingest_schema_agreement.py`` guards against by
comparing both with ``schemas.validator`` on hundreds of variants.

Mirrors ``schemas/common.json#/$defs/reading_fields``, ``standalone_reading``
and ``schemas/concentrator_upload.json``; any change there must be made here.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["certainly_valid_reading", "certainly_valid_standalone", "certainly_valid_envelope"]

_ID = re.compile(r"[^\s|]{1,64}")
_TIMESTAMP = re.compile(
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?Z"
)
_INTERVALS = frozenset({15, 30, 60, 1440})
_UNITS = frozenset({"kWh", "Wh"})
_EVENT_CODES = frozenset(
    {
        "cover_open",
        "terminal_cover_open",
        "magnetic_field",
        "voltage_loss",
        "current_loss",
        "power_outage",
        "power_restored",
        "clock_error",
        "meter_replaced",
    }
)
_PHASES = frozenset({"a", "b", "c"})
_ENVELOPE_KEYS = frozenset(
    {"kind", "concentrator_id", "area_id", "ts", "interval_minutes", "unit", "area_meter", "readings"}
)


_KNOWN_MAX = 1 << 16
"""Strings that passed :data:`_ID` / :data:`_TIMESTAMP` are remembered (a fleet reuses few ids and
stamps), so the common case is one set lookup; the sets are emptied when they reach this size."""

_known_ids: set[str] = set()
_known_timestamps: set[str] = set()


def _learn(known: set[str], pattern: re.Pattern[str], value: str) -> bool:
    if pattern.fullmatch(value) is None:
        return False
    if len(known) >= _KNOWN_MAX:
        known.clear()
    known.add(value)
    return True


def _id(value: Any) -> bool:
    return type(value) is str and (value in _known_ids or _learn(_known_ids, _ID, value))


def _timestamp(value: Any) -> bool:
    return type(value) is str and (value in _known_timestamps or _learn(_known_timestamps, _TIMESTAMP, value))


def _interval(value: Any) -> bool:
    # 15.0 is valid JSON Schema too; it takes the slow path.
    return type(value) is int and value in _INTERVALS


def _unit(value: Any) -> bool:
    return type(value) is str and value in _UNITS


_INF = math.inf


def _non_negative(value: Any) -> bool:
    # type() excludes bool; NaN and infinity fail here and are rejected as `nan` later.
    return (type(value) is float and 0 <= value < _INF) or (type(value) is int and value >= 0)


def _fraction(value: Any) -> bool:
    return (type(value) is float or type(value) is int) and 0 <= value <= 1


def _phases(value: Any) -> bool:
    if type(value) is not dict or not value or not value.keys() <= _PHASES:
        return False
    for v in value.values():
        if not ((type(v) is float and 0 <= v < _INF) or (type(v) is int and v >= 0)):
            return False
    return True


def _events(value: Any) -> bool:
    if type(value) is not list:
        return False
    for event in value:
        if type(event) is not dict or len(event) != 2:
            return False
        code = event.get("code")
        if type(code) is not str or code not in _EVENT_CODES or not _timestamp(event.get("at")):
            return False
    return True


_READING_KEYS = frozenset(
    {
        "meter_id",
        "area_id",
        "ts",
        "interval_minutes",
        "unit",
        "energy",
        "register_fwd",
        "register_rev",
        "voltage",
        "current",
        "power_factor",
        "demand_kw",
        "meter_time",
        "events",
    }
)
"""``reading_fields``' properties; no other key may appear (unevaluatedProperties)."""

_STANDALONE_KEYS = _READING_KEYS | {"kind"}  # the caller compares kind itself

_ABSENT: Any = object()


def _fields(obj: dict[str, Any]) -> bool:
    """The rule of every ``reading_fields`` property present in ``obj`` holds, meter_id is there,
    and energy or register_fwd is (the keys are already known to be allowed).

    Written out field by field, not as a table of rules: this runs once per reading.
    """
    get = obj.get
    value = get("meter_id", _ABSENT)
    if type(value) is not str or (value not in _known_ids and not _learn(_known_ids, _ID, value)):
        return False
    energy = get("energy", _ABSENT)
    fwd = get("register_fwd", _ABSENT)
    if energy is _ABSENT:
        if fwd is _ABSENT:
            return False
    elif not ((type(energy) is float and 0 <= energy < _INF) or (type(energy) is int and energy >= 0)):
        return False
    if fwd is not _ABSENT and not ((type(fwd) is float and 0 <= fwd < _INF) or (type(fwd) is int and fwd >= 0)):
        return False
    value = get("register_rev", _ABSENT)
    if value is not _ABSENT and not (
        (type(value) is float and 0 <= value < _INF) or (type(value) is int and value >= 0)
    ):
        return False
    value = get("demand_kw", _ABSENT)
    if value is not _ABSENT and not (
        (type(value) is float and 0 <= value < _INF) or (type(value) is int and value >= 0)
    ):
        return False
    value = get("power_factor", _ABSENT)
    if value is not _ABSENT and not ((type(value) is float or type(value) is int) and 0 <= value <= 1):
        return False
    value = get("area_id", _ABSENT)
    if value is not _ABSENT and (
        type(value) is not str or (value not in _known_ids and not _learn(_known_ids, _ID, value))
    ):
        return False
    value = get("ts", _ABSENT)
    if value is not _ABSENT and (
        type(value) is not str
        or (value not in _known_timestamps and not _learn(_known_timestamps, _TIMESTAMP, value))
    ):
        return False
    value = get("meter_time", _ABSENT)
    if value is not _ABSENT and (
        type(value) is not str
        or (value not in _known_timestamps and not _learn(_known_timestamps, _TIMESTAMP, value))
    ):
        return False
    value = get("interval_minutes", _ABSENT)
    if value is not _ABSENT and not (type(value) is int and value in _INTERVALS):
        return False
    value = get("unit", _ABSENT)
    if value is not _ABSENT and not (type(value) is str and value in _UNITS):
        return False
    value = get("voltage", _ABSENT)
    if value is not _ABSENT and not _phases(value):
        return False
    value = get("current", _ABSENT)
    if value is not _ABSENT and not _phases(value):
        return False
    value = get("events", _ABSENT)
    return value is _ABSENT or _events(value)


def certainly_valid_reading(obj: Any) -> bool:
    """True only if ``obj`` is valid against ``common.json#/$defs/reading`` (an upload's item)."""
    return type(obj) is dict and obj.keys() <= _READING_KEYS and _fields(obj)


def certainly_valid_standalone(obj: Any, kind: str) -> bool:
    """True only if ``obj`` is a valid single-reading message of ``kind`` (meter_reading or area_meter_reading)."""
    return (
        type(obj) is dict
        and obj.get("kind") == kind
        and obj.keys() <= _STANDALONE_KEYS
        and "area_id" in obj
        and "ts" in obj
        and "interval_minutes" in obj
        and _fields(obj)
    )


def certainly_valid_envelope(obj: Any) -> bool:
    """True only if ``obj`` is a valid concentrator upload apart from its items.

    The items (``readings[*]`` and ``area_meter``) are checked one by one with
    :func:`certainly_valid_reading`, so one bad reading costs one slow check.
    """
    return (
        type(obj) is dict
        and obj.get("kind") == "concentrator_upload"
        and obj.keys() <= _ENVELOPE_KEYS
        and _id(obj.get("concentrator_id"))
        and _id(obj.get("area_id"))
        and _timestamp(obj.get("ts"))
        and _interval(obj.get("interval_minutes"))
        and ("unit" not in obj or _unit(obj["unit"]))
        and type(obj.get("readings")) is list
    )
