"""The customer archive of a backtest: read from a file, or inferred from the readings (and said so).

Files:

- ``.jsonl``/``.json``: ``area_archive`` records (``schemas/README.md``), one
  per line, as ``amiwatch simulate --out-dir`` writes ``archive.jsonl``.
  Several versions of an area (a meter replaced, a multiplier corrected)
  take effect in event time: the first version of each area from the
  start, each later one from its ``updated_at`` on.
- ``.csv``: one row per meter with ``meter_id``, ``area_id`` and any of the
  archive's meter fields (``customer_class``, ``phases``, ``contracted_kva``,
  ``multiplier``, ``has_generation``, ``status``, ``nominal_voltage_v``,
  ``basic_current_a``, ``max_current_a``, ``installed_at``).

``--area-meters FILE`` (CSV: ``area_id``, ``meter_id`` and optionally
``multiplier``, ``rated_kva``, ``loss_limit_pct``) names each area's
transformer meter where the archive does not; without an area meter an
area has no loss balance.

Without an archive file, every meter of the readings gets the default
record :data:`DEFAULT_METER` (multiplier 1, residential, active, single-
phase unless the readings carry phase b or c values for it) and unknown
ratings (contracted capacity, currents, nominal voltage), so the rules
that need those stay silent; the command prints that it did so.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from services.detector.eventtime import parse_ts

__all__ = [
    "DEFAULT_METER",
    "AreaFacts",
    "ArchiveTimeline",
    "load_archive",
    "load_area_meters",
    "infer_archive",
    "meter_areas",
    "area_meter_ids",
]

DEFAULT_METER: dict[str, Any] = {
    "customer_class": "residential",
    "phases": 1,
    "multiplier": 1,
    "has_generation": False,
    "status": "active",
}
"""What a meter without an archive is taken to be."""

_NUMERIC = {"phases": int, "multiplier": float, "contracted_kva": float, "nominal_voltage_v": float,
            "basic_current_a": float, "max_current_a": float}  # fmt: skip
_METER_FIELDS = ("customer_class", "has_generation", "status", "installed_at", *_NUMERIC)


@dataclass(frozen=True, slots=True)
class AreaFacts:
    """An area's transformer meter and loss limit from ``--area-meters``."""

    meter_id: str
    multiplier: float = 1.0
    rated_kva: float | None = None
    loss_limit_pct: float | None = None

    def area_meter(self) -> dict[str, Any]:
        out: dict[str, Any] = {"meter_id": self.meter_id, "multiplier": self.multiplier}
        if self.rated_kva is not None:
            out["rated_kva"] = self.rated_kva
        return out


def _cell(row: dict[str, str], name: str) -> str | None:
    value = row.get(name)
    return value if value not in (None, "") else None


def load_area_meters(path: Path) -> dict[str, AreaFacts]:
    """Area id → its transformer meter (``--area-meters`` CSV)."""
    out: dict[str, AreaFacts] = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=2):
            area, meter = _cell(row, "area_id"), _cell(row, "meter_id")
            if area is None or meter is None:
                raise ValueError(f"{path}, row {n}: area_id and meter_id are required")
            numbers = {k: float(v) for k in ("multiplier", "rated_kva", "loss_limit_pct") if (v := _cell(row, k)) is not None}
            out[area] = AreaFacts(meter, **numbers)
    return out


def _meter(row: dict[str, str], path: Path, n: int) -> dict[str, Any]:
    meter: dict[str, Any] = {"meter_id": row["meter_id"], **DEFAULT_METER}
    for name in _METER_FIELDS:
        value = _cell(row, name)
        if value is None:
            continue
        try:
            if name in _NUMERIC:
                meter[name] = _NUMERIC[name](float(value))
            elif name == "has_generation":
                meter[name] = value.strip().lower() in ("1", "true", "yes", "y")
            else:
                meter[name] = value
        except ValueError:
            raise ValueError(f"{path}, row {n}: {name} = {value!r} is not a number") from None
    return meter


def _from_csv(path: Path) -> list[dict[str, Any]]:
    areas: dict[str, list[dict[str, Any]]] = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=2):
            if _cell(row, "meter_id") is None or _cell(row, "area_id") is None:
                raise ValueError(f"{path}, row {n}: meter_id and area_id are required")
            areas.setdefault(row["area_id"], []).append(_meter(row, path, n))
    return [{"area_id": a, "updated_at": None, "meters": meters} for a, meters in areas.items()]


def load_archive(path: Path) -> list[dict[str, Any]]:
    """Archive records from ``path`` (JSON lines of area records, or a CSV of meters)."""
    if path.suffix.lower() == ".csv":
        return _from_csv(path)
    records = []
    with path.open("rb") as fh:
        for n, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    records.append(orjson.loads(line))
                except orjson.JSONDecodeError as exc:
                    raise ValueError(f"{path}, line {n}: {exc}") from None
    return records


def meter_areas(records: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Customer meter id → area id (a later record wins)."""
    return {meter["meter_id"]: record["area_id"] for record in records for meter in record.get("meters", ())}


def area_meter_ids(records: Iterable[dict[str, Any]], facts: dict[str, AreaFacts]) -> dict[str, str]:
    """Transformer meter id → area id, from the records' ``area_meter`` and ``--area-meters``."""
    out = {f.meter_id: area for area, f in facts.items()}
    for record in records:
        meter = (record.get("area_meter") or {}).get("meter_id")
        if meter:
            out[meter] = record["area_id"]
    return out


def infer_archive(meters: dict[str, dict[str, bool]]) -> list[dict[str, Any]]:
    """Default records for area → {meter id → whether it reported phase b/c}."""
    return [
        {
            "area_id": area,
            "updated_at": None,
            "meters": [{"meter_id": m, **DEFAULT_METER, "phases": 3 if three else 1} for m, three in sorted(ids.items())],
        }
        for area, ids in sorted(meters.items())
    ]


@dataclass(slots=True)
class ArchiveTimeline:
    """Archive versions in event-time order: what applies from the start, and what becomes due later."""

    initial: list[dict[str, Any]]
    later: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (updated_at epoch s, record), ascending

    @classmethod
    def of(cls, records: Iterable[dict[str, Any]], area_meters: dict[str, AreaFacts], start: str) -> ArchiveTimeline:
        """Order ``records`` by area and ``updated_at``; fill area meters; stamp undated records with ``start``."""
        by_area: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            by_area.setdefault(record["area_id"], []).append(record)
        timeline = cls(initial=[])
        for area, versions in by_area.items():
            dated = sorted(versions, key=lambda r: parse_ts(r["updated_at"]) if r.get("updated_at") else 0)
            for k, record in enumerate(dated):
                record = {"concentrator_id": f"C-{area}", **record, "updated_at": record.get("updated_at") or start}
                facts = area_meters.get(area)
                if facts is not None and not record.get("area_meter"):
                    record["area_meter"] = facts.area_meter()
                if facts is not None and facts.loss_limit_pct is not None and "loss_limit_pct" not in record:
                    record["loss_limit_pct"] = facts.loss_limit_pct
                if k == 0:
                    timeline.initial.append(record)
                else:
                    timeline.later.append((parse_ts(record["updated_at"]), record))
        timeline.later.sort(key=lambda item: item[0])
        return timeline

    def due(self, ts: int) -> list[dict[str, Any]]:
        """Remove and return the later versions whose ``updated_at`` ≤ ``ts``."""
        count = 0
        while count < len(self.later) and self.later[count][0] <= ts:
            count += 1
        out = [record for _, record in self.later[:count]]
        del self.later[:count]
        return out

    def records(self) -> list[dict[str, Any]]:
        """Every version, initial ones first."""
        return [*self.initial, *(record for _, record in self.later)]
