"""Detector thresholds: the catalogue's defaults as configuration, never literals in code.

The defaults live in ``config/thresholds.toml`` (one section per alert type,
values from shared/domain.md). ``AMIWATCH_THRESHOLDS`` (or the ``path``
argument) names a file merged over them; overrides per customer class and per
area come from ``[overrides.class.<class>.<section>]`` and
``[overrides.area.<area_id>.<section>]``. Precedence for one meter: area
override > class override > default. Every key of an override or a deployment
file must exist in the defaults with a compatible type: a misspelt key fails at
load instead of leaving the default silently in force.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from services.detector.archive import CUSTOMER_CLASSES

__all__ = ["Thresholds", "Value", "load_thresholds", "DEFAULTS_PATH"]

DEFAULTS_PATH = Path(__file__).resolve().parent / "config" / "thresholds.toml"

Value = float | int | bool | str | tuple[str, ...]
Sections = Mapping[str, Mapping[str, Value]]


class Thresholds:
    """All thresholds, optionally specialised to one area (:meth:`for_area`).

    Scalar look-ups (:meth:`num`, :meth:`count`, :meth:`text`, :meth:`texts`)
    answer for the area; :meth:`per_class` answers per meter where a value
    differs by customer class (e.g. the power-factor limit).
    """

    __slots__ = ("_base", "_values", "_class", "_areas", "_area_id", "_area_keys", "_cache")

    def __init__(
        self,
        values: Sections,
        class_overrides: Mapping[str, Sections],
        area_overrides: Mapping[str, Sections],
        area_id: str | None = None,
        cache: dict[str, Thresholds] | None = None,
    ) -> None:
        self._base = values
        self._class = class_overrides
        self._areas = area_overrides
        self._area_id = area_id
        own = area_overrides.get(area_id, {}) if area_id is not None else {}
        self._area_keys = frozenset((s, k) for s, kv in own.items() for k in kv)
        self._values: Sections = MappingProxyType(
            {s: MappingProxyType({**kv, **own.get(s, {})}) for s, kv in values.items()}
        )
        self._cache: dict[str, Thresholds] = {} if cache is None else cache

    @property
    def area_id(self) -> str | None:
        """The area these thresholds are specialised to (None: deployment-wide)."""
        return self._area_id

    def for_area(self, area_id: str) -> Thresholds:
        """The deployment-wide thresholds with ``[overrides.area.<area_id>]`` applied (cached)."""
        if area_id == self._area_id:
            return self
        got = self._cache.get(area_id)
        if got is None:
            got = Thresholds(self._base, self._class, self._areas, area_id, self._cache)
            self._cache[area_id] = got
        return got

    def section(self, name: str) -> Mapping[str, Value]:
        """Every key of one section (KeyError if the section does not exist)."""
        return self._values[name]

    def get(self, section: str, key: str) -> Value:
        """One value (KeyError naming section and key if absent)."""
        try:
            return self._values[section][key]
        except KeyError:
            raise KeyError(f"threshold {section}.{key} is not configured") from None

    def num(self, section: str, key: str) -> float:
        """A numeric value as float."""
        return float(self.get(section, key))  # type: ignore[arg-type]

    def count(self, section: str, key: str) -> int:
        """A whole-number value (interval counts, days)."""
        return int(self.get(section, key))  # type: ignore[arg-type]

    def text(self, section: str, key: str) -> str:
        """A string value."""
        return str(self.get(section, key))

    def texts(self, section: str, key: str) -> tuple[str, ...]:
        """A list-of-strings value (e.g. event codes)."""
        return tuple(self.get(section, key))  # type: ignore[arg-type]

    def severity(self, alert_type: str) -> str:
        """The severity an alert type's findings start with."""
        return self.text(alert_type, "severity")

    def quiet_s(self, alert_type: str) -> int:
        """Event-time seconds without a finding after which an open alert of the type resolves."""
        return round(self.num(alert_type, "resolve_quiet_h") * 3600)

    def per_class(self, section: str, key: str, class_codes: np.ndarray) -> np.ndarray:
        """float64 array aligned to ``class_codes`` (archive customer-class codes, -1 unknown).

        An area override of the key applies to every class; otherwise each
        class's override, else the default.
        """
        default = self.num(section, key)
        if (section, key) in self._area_keys:
            return np.full(len(class_codes), default)
        table = [float(self._class.get(c, {}).get(section, {}).get(key, default)) for c in CUSTOMER_CLASSES]
        table.append(default)  # code -1 indexes this last entry
        return np.asarray(table, dtype=np.float64)[class_codes]


def _freeze(value: Any) -> Value:
    return tuple(value) if isinstance(value, list) else value


def _compatible(default: Value, new: Any) -> bool:
    if isinstance(default, bool) or isinstance(new, bool):
        return isinstance(default, bool) and isinstance(new, bool)
    if isinstance(default, (int, float)):
        return isinstance(new, (int, float))
    if isinstance(default, tuple):
        return isinstance(new, list) and all(isinstance(x, str) for x in new)
    return isinstance(new, type(default))


def _check_sections(base: Sections, over: Mapping[str, Any], where: str) -> dict[str, dict[str, Value]]:
    out: dict[str, dict[str, Value]] = {}
    for section, kv in over.items():
        if section not in base or not isinstance(kv, dict):
            raise ValueError(f"{where}: unknown threshold section [{section}]")
        for key, value in kv.items():
            if key not in base[section]:
                raise ValueError(f"{where}: unknown threshold {section}.{key}")
            if not _compatible(base[section][key], value):
                raise ValueError(f"{where}: {section}.{key} = {value!r} does not match the default's type")
        out[section] = {k: _freeze(v) for k, v in kv.items()}
    return out


def _split(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    overrides = doc.pop("overrides", {}) or {}
    unknown = set(overrides) - {"class", "area"}
    if unknown:
        raise ValueError(f"unknown override kinds {sorted(unknown)} (use class or area)")
    return doc, overrides


def load_thresholds(path: Path | None = None) -> Thresholds:
    """The defaults, with ``path`` (or the file named by ``AMIWATCH_THRESHOLDS``) merged over them."""
    with DEFAULTS_PATH.open("rb") as fh:
        values, overrides = _split(tomllib.load(fh))
    sections: dict[str, dict[str, Value]] = {s: {k: _freeze(v) for k, v in kv.items()} for s, kv in values.items()}
    per_class: dict[str, dict[str, dict[str, Value]]] = {}
    per_area: dict[str, dict[str, dict[str, Value]]] = {}
    layers = [(str(DEFAULTS_PATH), overrides)]
    env = os.environ.get("AMIWATCH_THRESHOLDS", "")
    extra = path if path is not None else (Path(env) if env else None)
    if extra is not None:
        with Path(extra).open("rb") as fh:
            doc, extra_overrides = _split(tomllib.load(fh))
        for section, kv in _check_sections(sections, doc, str(extra)).items():
            sections[section].update(kv)
        layers.append((str(extra), extra_overrides))
    for where, over in layers:
        for cls, secs in (over.get("class") or {}).items():
            if cls not in CUSTOMER_CLASSES:
                raise ValueError(f"{where}: unknown customer class {cls!r} in overrides")
            for s, kv in _check_sections(sections, secs, where).items():
                per_class.setdefault(cls, {}).setdefault(s, {}).update(kv)
        for area, secs in (over.get("area") or {}).items():
            for s, kv in _check_sections(sections, secs, where).items():
                per_area.setdefault(str(area), {}).setdefault(s, {}).update(kv)
    return Thresholds(sections, per_class, per_area)
