"""Raw bytes → normalised readings plus rejections, by the contract alone.

This is the *pure* half of ingest's checks: its verdict depends only on the
bytes, so a replay gives the same one. The checks that depend on state (the
archive, the newest event time) live in :mod:`services.ingest.admission`.

Order of checks, so each malformed case gets the reason the contract names
(the first failing check decides; later ones are not run):

1. ``not_json``: no value, not UTF-8, or not JSON. orjson refuses the NaN and
   Infinity tokens, so a message orjson refuses is parsed again with the
   standard library, which accepts them; if that succeeds the message *is*
   JSON, and a non-finite number inside it is reason ``nan`` for the part
   that holds it (the whole message, or one reading of an upload).
2. ``schema``: not a JSON object, or an unknown ``kind``.
3. ``nan``: a NaN or infinite number (JSON Schema cannot see it: NaN passes
   ``minimum``).
4. The JSON Schema of the message's kind (``schemas.validator``), each error
   mapped by :func:`reason_of` (explicit and tested): an ``enum`` error on
   ``unit`` is ``unknown_unit``; a ``minimum`` error on ``energy``,
   ``register_fwd`` or ``register_rev`` is ``negative_energy``; anything else
   is ``schema``. With several errors the most specific reason wins
   (:data:`REASON_PRECEDENCE`): a bad unit makes every energy meaningless, and
   a negative energy is a finding even next to a stray field.
5. ``schema`` again for a timestamp that matches the pattern but is no
   calendar date (2026-02-30): the pattern cannot rule it out.
6. ``misaligned_timestamp``: more than 10 % of the interval off its end.

Concentrator uploads are split: a fault in the envelope (or in a value every
reading inherits from it) rejects the message once; a fault in one reading
(or the area meter) rejects that reading alone, with its index, and the good
readings go on. Schema checks take :mod:`services.ingest.fastpath` when it
can vouch for an object and jsonschema otherwise, so jsonschema decides every
rejection and words its message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import orjson
from jsonschema import ValidationError

import schemas
from services.ingest.fastpath import (
    PhaseValues,
    certainly_valid_envelope,
    certainly_valid_reading,
    decode_standalone,
)
from services.ingest.normalise import Misaligned, Phases, Reading, align, normalise, parse_time, reading

__all__ = [
    "REASONS",
    "REASON_PRECEDENCE",
    "KINDS",
    "Rejection",
    "Parsed",
    "reason_of",
    "validate",
    "valid_standalone",
]

REASONS: tuple[str, ...] = schemas.enum("dead_letter_reason")
"""Every dead-letter reason of the contract (``common.json#/$defs/dead_letter_reason``)."""

REASON_PRECEDENCE: tuple[str, ...] = ("unknown_unit", "negative_energy", "schema")
"""Among schema errors of one object, the first reason present here wins."""

KINDS: tuple[str, ...] = ("meter_reading", "area_meter_reading", "concentrator_upload")
"""The raw message kinds; anything else is counted as ``unknown``."""

_ENERGY_FIELDS = frozenset({"energy", "register_fwd", "register_rev"})
_MAX_MESSAGE = 400
_MAX_ERRORS = 3


class Rejection:
    """One dead letter to be: a whole message (``index`` None) or one reading of an upload.

    ``meter_id``/``area_id`` are what the message claimed, unchecked (they
    may be the very fault), or None.
    """

    __slots__ = ("reason", "message", "index", "meter_id", "area_id")

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        index: int | None = None,
        meter_id: str | None = None,
        area_id: str | None = None,
    ) -> None:
        self.reason = reason
        self.message = message
        self.index = index
        self.meter_id = meter_id
        self.area_id = area_id

    @property
    def slot(self) -> int:
        """Same numbering as :attr:`Reading.slot`: upload index, else -1."""
        return -1 if self.index is None else self.index

    def __repr__(self) -> str:
        return f"Rejection({self.reason}, index={self.index}, {self.message!r})"


class Parsed:
    """What one raw message holds: its kind, the readings that passed, the rejections.

    ``envelope`` is the (area id, aligned ts) an upload's readings inherit,
    so admission can judge those once for the whole message; None for
    single-reading messages and for messages rejected whole.
    """

    __slots__ = ("kind", "envelope", "readings", "rejections")

    def __init__(
        self,
        kind: str,
        readings: list[Reading] | None = None,
        rejections: list[Rejection] | None = None,
        envelope: tuple[str, int] | None = None,
    ) -> None:
        self.kind = kind
        self.readings = readings if readings is not None else []
        self.rejections = rejections if rejections is not None else []
        self.envelope = envelope


def reason_of(error: ValidationError) -> str:
    """The dead-letter reason of one JSON Schema error (see the module docstring)."""
    field = error.absolute_path[-1] if error.absolute_path else None
    if field == "unit" and error.validator == "enum":
        return "unknown_unit"
    if field in _ENERGY_FIELDS and error.validator == "minimum":
        return "negative_energy"
    return "schema"


def _where(prefix: str, path: Iterable[Any]) -> str:
    out = prefix
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "message"


def _describe(error: ValidationError) -> str:
    """jsonschema's message, except that a failed ``anyOf`` lists what each branch missed
    instead of printing the whole object."""
    if error.validator == "anyOf" and error.context:
        return "none of these holds: " + " | ".join(dict.fromkeys(sub.message for sub in error.context))
    return error.message


def _judge(errors: list[ValidationError], prefix: str = "") -> tuple[str, str]:
    """(reason, message) for the schema errors of one object; ``prefix`` names it inside its message."""
    by_reason = {r: [e for e in errors if reason_of(e) == r] for r in REASON_PRECEDENCE}
    reason = next(r for r in REASON_PRECEDENCE if by_reason[r])
    texts = list(dict.fromkeys(f"{_where(prefix, e.absolute_path)}: {_describe(e)}" for e in by_reason[reason]))
    shown = [t if len(t) <= _MAX_MESSAGE else t[: _MAX_MESSAGE - 1] + "…" for t in texts[:_MAX_ERRORS]]
    more = len(texts) - len(shown)
    return reason, "; ".join(shown) + (f" (and {more} more)" if more > 0 else "")


def _nonfinite(value: Any) -> bool:
    """Whether ``value`` holds a NaN or infinite number anywhere (only after the stdlib parse)."""
    if type(value) is float:
        return not math.isfinite(value)
    if type(value) is dict:
        return any(_nonfinite(v) for v in value.values())
    if type(value) is list:
        return any(_nonfinite(v) for v in value)
    return False


def _decode(value: bytes | None) -> tuple[Any, bool] | Rejection:
    """(object, whether a non-finite number may be inside), or the ``not_json`` rejection."""
    if value is None:
        return Rejection("not_json", "the record has no value")
    try:
        return orjson.loads(value), False
    except orjson.JSONDecodeError:
        pass
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection("not_json", f"not UTF-8: {exc}")
    seen: list[str] = []

    def constant(token: str) -> float:
        seen.append(token)
        return float(token)

    def number(token: str) -> float:
        parsed = float(token)
        if not math.isfinite(parsed):
            seen.append(token)
        return parsed

    try:
        obj = json.loads(text, parse_constant=constant, parse_float=number)
    except (ValueError, RecursionError) as exc:
        return Rejection("not_json", str(exc)[:_MAX_MESSAGE])
    return obj, bool(seen)


def _text(value: Any) -> str | None:
    return value if type(value) is str else None


class _Invalid(Exception):
    """A check after the schema failed: carries the reason and message of its rejection."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@lru_cache(maxsize=1 << 14)
def _aligned(text: str, interval_minutes: int) -> tuple[float, int]:
    """(raw epoch s, aligned interval end), cached: a fleet's messages share few stamps.

    Raises ValueError (no calendar date) or :class:`Misaligned`; failures are not cached.
    """
    stamp = parse_time(text)
    return stamp, align(stamp, interval_minutes)


def _stamp(text: str, interval_minutes: int, where: str) -> tuple[float, int]:
    """(raw epoch s, aligned interval end) of a schema-valid timestamp."""
    try:
        return _aligned(text, interval_minutes)
    except Misaligned as exc:
        raise _Invalid("misaligned_timestamp", f"{where}: {exc}") from None
    except ValueError:
        raise _Invalid("schema", f"{where}: {text!r} is not a calendar date and time") from None


def _reject_standalone(obj: dict[str, Any], kind: str, reason: str, message: str) -> Parsed:
    meter_id, area_id = _text(obj.get("meter_id")), _text(obj.get("area_id"))
    return Parsed(kind, rejections=[Rejection(reason, message, meter_id=meter_id, area_id=area_id)])


def _standalone_reading(obj: dict[str, Any], kind: str, stamp: float, ts: int, interval: int) -> Reading:
    """The reading of a schema-valid single-reading message whose ``ts`` is ``stamp``, aligned to ``ts``."""
    return normalise(
        obj,
        area_id=obj["area_id"],
        ts=ts,
        stamp=stamp,
        interval_minutes=interval,
        unit=obj.get("unit", "kWh"),
        is_area_meter=kind == "area_meter_reading",
        index=None,
    )


def _standalone(obj: dict[str, Any], kind: str, may_be_nonfinite: bool) -> Parsed:
    if may_be_nonfinite and _nonfinite(obj):
        return _reject_standalone(obj, kind, "nan", "a number is NaN or infinite")
    errors = list(schemas.validator(kind).iter_errors(obj))  # the fast path (validate's first step) declined it
    if errors:
        return _reject_standalone(obj, kind, *_judge(errors))
    interval = int(obj["interval_minutes"])
    try:
        stamp, ts = _stamp(obj["ts"], interval, "ts")
        reading = _standalone_reading(obj, kind, stamp, ts, interval)
    except _Invalid as bad:
        return _reject_standalone(obj, kind, bad.reason, bad.message)
    except ValueError as bad:  # a calendar-invalid meter_time or event time
        return _reject_standalone(obj, kind, "schema", str(bad))
    return Parsed(kind, readings=[reading])


def _item_errors(errors: list[ValidationError]) -> tuple[list[ValidationError], dict[int, list[ValidationError]]]:
    """Split an upload's schema errors into envelope errors and errors per item slot (-1 = area_meter)."""
    envelope: list[ValidationError] = []
    items: dict[int, list[ValidationError]] = {}
    for error in errors:
        path = error.absolute_path
        if len(path) >= 2 and path[0] == "readings" and isinstance(path[1], int):
            items.setdefault(path[1], []).append(error)
        elif path and path[0] == "area_meter":
            items.setdefault(-1, []).append(error)
        else:
            envelope.append(error)
    return envelope, items


class _Envelope:
    """What an upload's items inherit: area, ts (raw and aligned), interval, unit."""

    __slots__ = ("area_id", "ts_text", "stamp", "ts", "interval_minutes", "unit")

    def __init__(self, obj: dict[str, Any]) -> None:
        self.area_id: str = obj["area_id"]
        self.ts_text: str = obj["ts"]
        self.interval_minutes = int(obj["interval_minutes"])
        self.unit: str = obj.get("unit", "kWh")
        self.stamp, self.ts = _stamp(self.ts_text, self.interval_minutes, "ts")


def _upload_item(
    item: Any,
    index: int | None,
    envelope: _Envelope,
    errors: list[ValidationError] | None,
    may_be_nonfinite: bool,
) -> Reading:
    """One item of a valid envelope as a reading, or :class:`_Invalid`.

    ``errors``: the item's schema errors when the whole upload went through
    jsonschema already (None: judge the item here).
    """
    where = "area_meter" if index is None else f"readings[{index}]"
    if may_be_nonfinite and _nonfinite(item):
        raise _Invalid("nan", f"{where}: a number is NaN or infinite")
    if errors is None and not certainly_valid_reading(item):
        errors = list(schemas.validator("common#/$defs/reading").iter_errors(item))
    if errors:
        raise _Invalid(*_judge(errors, where))
    interval = int(item.get("interval_minutes", envelope.interval_minutes))
    stamp, ts = envelope.stamp, envelope.ts
    if "ts" in item or interval != envelope.interval_minutes:
        stamp, ts = _stamp(item.get("ts", envelope.ts_text), interval, f"{where}.ts")
    try:
        return normalise(
            item,
            area_id=item.get("area_id", envelope.area_id),
            ts=ts,
            stamp=stamp,
            interval_minutes=interval,
            unit=item.get("unit", envelope.unit),
            is_area_meter=index is None,
            index=index,
        )
    except ValueError as bad:  # a calendar-invalid meter_time or event time
        raise _Invalid("schema", f"{where}.{bad}") from None


def _upload(obj: dict[str, Any], may_be_nonfinite: bool) -> Parsed:
    kind = "concentrator_upload"
    area_id = _text(obj.get("area_id"))

    def reject(reason: str, message: str) -> Parsed:
        return Parsed(kind, rejections=[Rejection(reason, message, area_id=area_id)])

    if may_be_nonfinite and _nonfinite({k: v for k, v in obj.items() if k not in ("readings", "area_meter")}):
        return reject("nan", "a number of the upload is NaN or infinite")
    item_errors: dict[int, list[ValidationError]] | None = None  # None: items not judged yet
    if not certainly_valid_envelope(obj):
        envelope_errors, item_errors = _item_errors(list(schemas.validator(kind).iter_errors(obj)))
        if envelope_errors:
            return reject(*_judge(envelope_errors))
    try:
        envelope = _Envelope(obj)
    except _Invalid as bad:
        return reject(bad.reason, bad.message)
    parsed = Parsed(kind, envelope=(envelope.area_id, envelope.ts))
    items: list[tuple[int | None, Any]] = list(enumerate(obj["readings"]))
    if "area_meter" in obj:
        items.insert(0, (None, obj["area_meter"]))
    for index, item in items:
        errors = None if item_errors is None else item_errors.get(-1 if index is None else index, [])
        try:
            parsed.readings.append(_upload_item(item, index, envelope, errors, may_be_nonfinite))
        except _Invalid as bad:
            claimed = item if type(item) is dict else {}
            parsed.rejections.append(
                Rejection(
                    bad.reason,
                    bad.message,
                    index=index,
                    meter_id=_text(claimed.get("meter_id")),
                    area_id=_text(claimed.get("area_id")) or area_id,
                )
            )
    return parsed


def validate(value: bytes | None) -> Parsed:
    """Check and normalise one raw record value by the contract (no archive, no clock)."""
    fast = valid_standalone(value)
    if fast is not None:  # a single reading msgspec vouched for (replays come this way too)
        return Parsed(fast[0], readings=[fast[1]])
    decoded = _decode(value)
    if isinstance(decoded, Rejection):
        return Parsed("unknown", rejections=[decoded])
    obj, may_be_nonfinite = decoded
    if type(obj) is not dict:
        return Parsed(
            "unknown", rejections=[Rejection("schema", f"a raw message is a JSON object, not {type(obj).__name__}")]
        )
    kind = obj.get("kind")
    if kind in ("meter_reading", "area_meter_reading"):
        return _standalone(obj, kind, may_be_nonfinite)
    if kind == "concentrator_upload":
        return _upload(obj, may_be_nonfinite)
    claimed = Rejection(
        "schema",
        f"kind: {kind!r} is not one of {list(KINDS)}"[:_MAX_MESSAGE],
        meter_id=_text(obj.get("meter_id")),
        area_id=_text(obj.get("area_id")),
    )
    return Parsed("unknown", rejections=[claimed])


def valid_standalone(value: bytes | None) -> tuple[str, Reading] | None:
    """(kind, reading) of a single-reading message that is certainly valid, else None.

    The hot path of per-reading input: what :func:`validate` gives for such a
    message (``Parsed(kind, readings=[reading])``), without its layers. None
    means "ask :func:`validate`", which judges and words every rejection.
    """
    msg = decode_standalone(value) if value is not None else None
    if msg is None:
        return None
    kind, interval = msg.kind, msg.interval_minutes
    try:
        stamp, ts = _aligned(msg.ts, interval)
        return kind, reading(
            msg.meter_id,
            msg.energy,
            msg.register_fwd,
            msg.register_rev,
            _phases(msg.voltage),
            _phases(msg.current),
            msg.power_factor,
            msg.demand_kw,
            msg.meter_time,
            tuple((e.code, e.at) for e in msg.events) if msg.events else (),
            area_id=msg.area_id,
            ts=ts,
            stamp=stamp,
            interval_minutes=interval,
            unit=msg.unit,
            is_area_meter=kind == "area_meter_reading",
            index=None,
        )
    except ValueError:  # misaligned, or a calendar-invalid date: validate() words the rejection
        return None


def _phases(values: PhaseValues | None) -> Phases:
    return (None, None, None) if values is None else (values.a, values.b, values.c)
