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

Two forms. A single-reading message, the hot path of per-reading input,
is decoded and checked in one pass by msgspec into a :class:`StandaloneReading`
(:func:`decode_standalone`), types, ranges, enums and unknown keys in C,
ids and stamps against the sets below (:func:`services.ingest.validation.validate`
tries it first); upload envelopes and items are checked as parsed dicts.

Mirrors ``schemas/common.json#/$defs/reading_fields``, ``standalone_reading``
and ``schemas/concentrator_upload.json``; any change there must be made here.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from typing import Annotated, Any, Literal, get_args

import msgspec

__all__ = [
    "certainly_valid_reading",
    "certainly_valid_envelope",
    "StandaloneReading",
    "decode_standalone",
]

_ID = re.compile(r"[^\s|]{1,64}")
_TIMESTAMP = re.compile(
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?Z"
)
_Interval = Literal[15, 30, 60, 1440]
_Unit = Literal["kWh", "Wh"]
_INTERVALS = frozenset(get_args(_Interval))
_UNITS = frozenset(get_args(_Unit))
_EventCode = Literal[
    "cover_open",
    "terminal_cover_open",
    "magnetic_field",
    "voltage_loss",
    "current_loss",
    "power_outage",
    "power_restored",
    "clock_error",
    "meter_replaced",
]

_EVENT_CODES = frozenset(get_args(_EventCode))
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


def _non_negative(value: Any) -> bool:
    # type() excludes bool; NaN and infinity fail here and are rejected as `nan` later.
    return (type(value) is float and 0 <= value < math.inf) or (type(value) is int and value >= 0)


def _fraction(value: Any) -> bool:
    return (type(value) is float or type(value) is int) and 0 <= value <= 1


def _phases(value: Any) -> bool:
    return (
        type(value) is dict and len(value) > 0 and value.keys() <= _PHASES and all(map(_non_negative, value.values()))
    )


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


_READING_FIELDS: dict[str, Callable[[Any], bool]] = {
    "meter_id": _id,
    "area_id": _id,
    "ts": _timestamp,
    "interval_minutes": _interval,
    "unit": _unit,
    "energy": _non_negative,
    "register_fwd": _non_negative,
    "register_rev": _non_negative,
    "voltage": _phases,
    "current": _phases,
    "power_factor": _fraction,
    "demand_kw": _non_negative,
    "meter_time": _timestamp,
    "events": _events,
}
"""``reading_fields``' properties and their rules; no other key may appear (unevaluatedProperties)."""

def _fields(obj: dict[str, Any]) -> bool:
    """Every key has a rule and passes it, meter_id is there, and energy or register_fwd is."""
    for key, value in obj.items():
        rule = _READING_FIELDS.get(key)
        if rule is None or not rule(value):
            return False
    return "meter_id" in obj and ("energy" in obj or "register_fwd" in obj)


def certainly_valid_reading(obj: Any) -> bool:
    """True only if ``obj`` is valid against ``common.json#/$defs/reading`` (an upload's item)."""
    return type(obj) is dict and _fields(obj)


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


# -- single-reading messages, decoded by msgspec ------------------------------------------------

_NonNegative = Annotated[float, msgspec.Meta(ge=0, le=sys.float_info.max)]  # JSON has no NaN; 1e400 is inf


class PhaseValues(msgspec.Struct, forbid_unknown_fields=True):
    """``phase_values``; at least one phase (checked after decoding)."""

    a: _NonNegative | None = None
    b: _NonNegative | None = None
    c: _NonNegative | None = None


class Event(msgspec.Struct, forbid_unknown_fields=True):
    """``event``: both fields required, nothing else."""

    code: _EventCode
    at: str


class StandaloneReading(msgspec.Struct, forbid_unknown_fields=True, tag_field="kind"):
    """``standalone_reading``, as msgspec decodes it; None stands for absent (null never gets here)."""

    meter_id: str
    area_id: str
    ts: str
    interval_minutes: _Interval
    unit: _Unit = "kWh"
    energy: _NonNegative | None = None
    register_fwd: _NonNegative | None = None
    register_rev: _NonNegative | None = None
    voltage: PhaseValues | None = None
    current: PhaseValues | None = None
    power_factor: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    demand_kw: _NonNegative | None = None
    meter_time: str | None = None
    events: list[Event] | None = None

    @property
    def kind(self) -> str:
        return type(self).__struct_config__.tag  # type: ignore[return-value]


class _MeterReading(StandaloneReading, tag="meter_reading"):
    pass


class _AreaMeterReading(StandaloneReading, tag="area_meter_reading"):
    pass


_STANDALONE = msgspec.json.Decoder(_MeterReading | _AreaMeterReading)


def _some_phase(value: PhaseValues | None) -> bool:
    return value is None or value.a is not None or value.b is not None or value.c is not None


def decode_standalone(value: bytes) -> StandaloneReading | None:
    """The single-reading message in ``value`` if it is certainly valid, else None ("ask the schema").

    msgspec reads an absent field and a JSON ``null`` alike, which the schema
    does not: any ``null`` in the bytes (a literal or inside a string) sends
    the message to the slow path.
    """
    if b"null" in value:
        return None
    try:
        msg = _STANDALONE.decode(value)
    except msgspec.MsgspecError:
        return None
    if not (
        _id(msg.meter_id)
        and _id(msg.area_id)
        and _timestamp(msg.ts)
        and (msg.energy is not None or msg.register_fwd is not None)
        and (msg.meter_time is None or _timestamp(msg.meter_time))
        and _some_phase(msg.voltage)
        and _some_phase(msg.current)
        and (msg.events is None or all(_timestamp(e.at) for e in msg.events))
    ):
        return None
    return msg
