"""Ingest's validation accepts exactly what the JSON Schemas of the raw messages accept.

The oracle is ``schemas.validator(name).is_valid`` for the raw message kinds
(``meter_reading``, ``area_meter_reading``, ``concentrator_upload``): a raw
record is valid when it is valid under one of them (their ``kind`` constants
make them disjoint, so an example "invalid" under one kind because its kind
names another is a valid message of the other). Ingest "accepts" a message
when its pure validation rejects nothing (for an upload: not one reading).

Checked on every published example and on generated variants of the valid
ones (each field dropped, given a wrong type, made negative, made an unknown
enum value or empty, and each object given an extra field), one by one. The
fast path is checked on its own too: whenever it vouches for an object, the
schema must accept it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

import schemas
from services.ingest.fastpath import certainly_valid_envelope, certainly_valid_reading
from services.ingest.fastpath import decode_standalone
from services.ingest.validation import _standalone as dict_path
from services.ingest.validation import valid_standalone, validate

RAW = ("meter_reading", "area_meter_reading", "concentrator_upload")
Path = tuple[str | int, ...]


def schema_accepts(obj: Any) -> bool:
    return any(schemas.validator(name).is_valid(obj) for name in RAW)


def ingest_accepts(obj: Any) -> bool:
    parsed = validate(orjson.dumps(obj))
    return not parsed.rejections and parsed.kind in RAW


def _nodes(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    yield path, value
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _nodes(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _nodes(child, (*path, index))


def _set(obj: Any, path: Path, value: Any) -> Any:
    out = copy.deepcopy(obj)
    target = out
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return out


def _drop(obj: Any, path: Path) -> Any:
    out = copy.deepcopy(obj)
    target = out
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return out


def _wrong_type(value: Any) -> Any:
    if isinstance(value, bool):
        return "true"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return 42
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return {"items": value}
    return 0


def mutations(obj: Any) -> Iterator[tuple[str, Any]]:
    """(description, variant) pairs of one valid example."""
    for path, value in _nodes(obj):
        where = ".".join(map(str, path)) or "<root>"
        if path:
            yield f"drop {where}", _drop(obj, path)
            yield f"wrong type {where}", _set(obj, path, _wrong_type(value))
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                yield f"negative {where}", _set(obj, path, -abs(value) - 1)
                yield f"float {where}", _set(obj, path, float(value))
                yield f"bool {where}", _set(obj, path, True)
            if isinstance(value, str):
                yield f"bad enum {where}", _set(obj, path, value + "_x")
                yield f"empty {where}", _set(obj, path, "")
        if isinstance(value, dict):
            yield f"extra field in {where}", _set(obj, (*path, "zz_extra"), 1)


def _examples(kind: int) -> list[tuple[str, Any]]:
    return [(f"{name}/{p.stem}", obj) for name in RAW for p, obj in schemas.examples(name)[kind]]


VALID, INVALID = _examples(0), _examples(1)
VARIANTS = [(f"{name}: {how}", variant) for name, obj in VALID for how, variant in mutations(obj)]


@pytest.mark.parametrize(("name", "obj"), VALID, ids=[n for n, _ in VALID])
def test_every_valid_example_is_accepted(name: str, obj: Any) -> None:
    assert ingest_accepts(obj)


@pytest.mark.parametrize(("name", "obj"), INVALID, ids=[n for n, _ in INVALID])
def test_every_invalid_example_is_rejected_unless_valid_as_another_kind(name: str, obj: Any) -> None:
    assert ingest_accepts(obj) == schema_accepts(obj)
    if not name.endswith("wrong_kind"):
        assert not ingest_accepts(obj)


def test_generated_variants_agree_with_the_schemas_one_by_one() -> None:
    assert len(VARIANTS) >= 300
    verdicts = [(name, schema_accepts(variant), ingest_accepts(variant)) for name, variant in VARIANTS]
    assert [name for name, schema, ingest in verdicts if schema != ingest] == []
    accepted = sum(schema for _, schema, _ in verdicts)
    assert 30 < accepted < len(VARIANTS) - 100  # the variants exercise both answers


def _fast(obj: Any) -> list[tuple[str, Any]]:
    """Every object the fast path vouched for in ``obj``, with the schema it vouched for."""
    if not isinstance(obj, dict):
        return []
    kind = obj.get("kind")
    if kind in ("meter_reading", "area_meter_reading"):
        return _decoded(obj)
    vouched = []
    if certainly_valid_envelope(obj):
        envelope = {k: v for k, v in obj.items() if k != "area_meter"}
        vouched.append(("concentrator_upload", {**envelope, "readings": []}))
        items = list(obj["readings"]) + ([obj["area_meter"]] if "area_meter" in obj else [])
        vouched += [("common#/$defs/reading", item) for item in items if certainly_valid_reading(item)]
    return vouched


def _decoded(obj: Any) -> list[tuple[str, Any]]:
    """The message msgspec's fast path vouched for, as bytes turn into it, with its kind: [] or one."""
    msg = decode_standalone(orjson.dumps(obj))
    return [] if msg is None else [(msg.kind, obj)]


NULLS = [(f"{name}: null {where}", _set(obj, path, None)) for name, obj in VALID for path, _ in _nodes(obj) if path
         for where in [".".join(map(str, path))]]


def test_decoding_a_single_reading_only_vouches_for_valid_messages_and_reads_them_as_the_schema_does() -> None:
    tried = VALID + INVALID + VARIANTS + NULLS
    vouched = [(name, kind, obj) for name, obj in tried for kind, obj in _decoded(obj)]
    assert [name for name, kind, obj in vouched if not schemas.validator(kind).is_valid(obj)] == []
    assert len(vouched) > 20  # it is actually used
    for name, kind, obj in vouched:  # and what it read is what the slow path reads
        fast, slow = valid_standalone(orjson.dumps(obj)), dict_path(obj, kind, False)  # jsonschema, then normalise
        if fast is not None:
            assert (fast[0], vars_of(fast[1])) == (slow.kind, vars_of(slow.readings[0])), name


def vars_of(reading: Any) -> tuple[Any, ...]:
    return tuple(getattr(reading, slot) for slot in type(reading).__slots__)


def test_the_fast_path_only_vouches_for_valid_objects() -> None:
    vouched = [(name, schema, part) for name, obj in VALID + INVALID + VARIANTS for schema, part in _fast(obj)]
    wrong = [name for name, schema, part in vouched if not schemas.validator(schema).is_valid(part)]
    assert wrong == []
    assert len(vouched) > len(VALID)  # it is actually used


def test_the_fast_path_takes_the_common_case() -> None:
    for name, obj in VALID:
        if "readme" in name:
            assert _fast(obj), name
            if obj["kind"] != "concentrator_upload":
                assert _decoded(obj), name
