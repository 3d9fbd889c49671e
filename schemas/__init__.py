"""The published message contracts (JSON Schema 2020-12) and their examples.

Schemas reference each other by ``$id`` (``common.json`` holds the shared
definitions); a ``referencing.Registry`` of every file here resolves those
references offline, so validation never touches the network.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

__all__ = ["SCHEMA_DIR", "MESSAGES", "load", "validator", "examples", "enum"]

SCHEMA_DIR = Path(__file__).resolve().parent

MESSAGES: tuple[str, ...] = (
    "meter_reading",
    "area_meter_reading",
    "concentrator_upload",
    "area_archive",
    "area_frame",
    "dead_letter",
    "label",
    "alert",
    "inspection",
)
"""Schemas that describe a whole message (``common`` only holds shared definitions)."""


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _read_json(path: Path) -> Any:
    # Python's json accepts NaN/Infinity; the contract does not, so neither do we.
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)


@cache
def load(name: str) -> dict[str, Any]:
    """The schema ``name`` (file stem, e.g. ``"meter_reading"``) as a dict.

    Cached: callers must not mutate the result.
    """
    return _read_json(SCHEMA_DIR / f"{name.removesuffix('.json')}.json")


@cache
def enum(name: str) -> tuple[str, ...]:
    """The values of an enum defined in ``common.json`` (e.g. ``dead_letter_reason``): one list for all code."""
    return tuple(load("common")["$defs"][name]["enum"])


def _registry() -> Registry:
    resources = [Resource.from_contents(load(p.stem)) for p in sorted(SCHEMA_DIR.glob("*.json"))]
    return Registry().with_resources((r.contents["$id"], r) for r in resources)


@cache
def validator(name: str) -> Draft202012Validator:
    """A validator for schema ``name``, with every ``$ref`` resolved offline.

    ``name`` may carry a JSON-pointer fragment to validate against one
    definition, e.g. ``"common#/$defs/reading"`` for a single item of a
    concentrator upload (ingest splits uploads reading by reading).
    """
    stem, _, fragment = name.partition("#")
    schema = load(stem)
    if fragment:
        schema = {"$ref": f"{schema['$id']}#{fragment}"}
    return Draft202012Validator(schema, registry=_registry())


def _load_all(folder: Path) -> list[tuple[Path, object]]:
    return [(p, _read_json(p)) for p in sorted(folder.glob("*.json"))]


def examples(name: str) -> tuple[list[tuple[Path, object]], list[tuple[Path, object]]]:
    """``(valid, invalid)`` examples of schema ``name`` as (path, parsed JSON) pairs, sorted by path."""
    base = SCHEMA_DIR / "examples" / name
    return _load_all(base / "valid"), _load_all(base / "invalid")
