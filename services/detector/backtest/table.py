"""Long-form readings files (CSV or Parquet) → rows of named fields, whatever the file calls its columns.

A readings file has one row per meter and interval. Only the meter id,
the timestamp and an energy (interval energy or the register) are needed;
every other field is optional and, when its column is absent, stays
unknown (the rules that need it stay silent). Default column names are
the canonical frame's (``schemas/README.md``), which is also what
``amiwatch simulate --out-dir`` writes to ``readings.csv``; ``--col-*``
flags rename them.

Values: empty cells are unknown; energies and registers are kWh
(energy on the primary side, registers as the meter displays them);
``ts`` is the interval's *end*, ISO 8601, UTC unless it carries an offset
(Parquet timestamps are taken as they are, naive ones as UTC).
Parquet needs ``pyarrow``, which amiwatch does not install: the error
says how to get it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["FIELDS", "Columns", "Row", "read_rows", "iso_ts"]

FIELDS: dict[str, str] = {
    "meter": "meter_id",
    "ts": "ts",
    "energy": "energy_kwh",
    "area": "area_id",
    "register": "register_fwd_kwh",
    "register_rev": "register_rev_kwh",
    "voltage": "voltage_a_v",
    "voltage_b": "voltage_b_v",
    "voltage_c": "voltage_c_v",
    "current": "current_a_a",
    "current_b": "current_b_a",
    "current_c": "current_c_a",
    "power_factor": "power_factor",
    "demand": "demand_kw",
    "clock_offset": "clock_offset_s",
}
"""Field → default column name. ``--col-<field>`` (underscores as dashes) renames one."""

_TEXT = ("meter", "ts", "area")
_NUMBERS = tuple(f for f in FIELDS if f not in _TEXT)


@dataclass(frozen=True, slots=True)
class Columns:
    """Which column of the file holds each field (None: the file has no such column)."""

    names: dict[str, str]

    @classmethod
    def of(cls, overrides: dict[str, str | None]) -> Columns:
        """The defaults with ``overrides`` (field → column name; None keeps the default)."""
        unknown = set(overrides) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown readings field(s) {sorted(unknown)}; known: {', '.join(FIELDS)}")
        return cls({f: overrides.get(f) or default for f, default in FIELDS.items()})

    def resolve(self, header: list[str], path: Path) -> dict[str, int]:
        """Field → column position in ``header``; fields whose column is absent are left out."""
        where = {name: i for i, name in enumerate(header)}
        found = {f: where[name] for f, name in self.names.items() if name in where}
        missing = [self.names[f] for f in ("meter", "ts") if f not in found]
        if missing:
            raise ValueError(f"{path}: no column {', '.join(missing)} (columns: {', '.join(header)}); rename with --col-*")
        if "energy" not in found and "register" not in found:
            raise ValueError(f"{path}: needs an energy column ({self.names['energy']}) or a register column ({self.names['register']})")
        return found


@dataclass(frozen=True, slots=True)
class Row:
    """One reading: text fields, and numbers (None when unknown) keyed by field name."""

    meter: str
    ts: str
    area: str | None
    values: dict[str, float]


def iso_ts(value: Any) -> str:
    """The contract's timestamp form (``2026-01-05T00:15:00Z``) of a cell: ISO text or a datetime."""
    if isinstance(value, str):
        if len(value) == 20 and value[10] == "T" and value[19] == "Z":
            return value
        value = datetime.fromisoformat(value.strip())
    if not isinstance(value, datetime):
        raise ValueError(f"not a timestamp: {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    stamp = value.astimezone(UTC)
    text = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    if stamp.microsecond:
        text += f".{stamp.microsecond:06d}"
    return text + "Z"


def _number(cell: Any) -> float | None:
    if cell is None or cell == "":
        return None
    return float(cell)


def _rows(cells: Iterator[list[Any]], found: dict[str, int], path: Path, first_line: int) -> Iterator[Row]:
    numbers = [(f, found[f]) for f in _NUMBERS if f in found]
    meter, ts, area = found["meter"], found["ts"], found.get("area")
    for n, row in enumerate(cells, start=first_line):
        try:
            values = {f: v for f, i in numbers if (v := _number(row[i])) is not None}
            yield Row(str(row[meter]), iso_ts(row[ts]), None if area is None or row[area] in ("", None) else str(row[area]), values)
        except (ValueError, IndexError) as exc:
            raise ValueError(f"{path}, row {n}: {exc}") from None


def _csv(path: Path, columns: Columns) -> Iterator[Row]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return
        yield from _rows(reader, columns.resolve(header, path), path, first_line=2)


def _parquet(path: Path, columns: Columns) -> Iterator[Row]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(
            f"{path}: reading Parquet needs pyarrow, which amiwatch does not install "
            "(`pip install pyarrow`, or export the table as CSV)"
        ) from None
    table = pq.ParquetFile(path)
    header = list(table.schema_arrow.names)
    found = columns.resolve(header, path)
    wanted = sorted(set(found.values()))
    position = {i: k for k, i in enumerate(wanted)}
    local = {f: position[i] for f, i in found.items()}
    line = 1
    for batch in table.iter_batches(columns=[header[i] for i in wanted]):
        cols = [batch.column(k).to_pylist() for k in range(len(wanted))]
        rows = [list(r) for r in zip(*cols, strict=True)]
        yield from _rows(iter(rows), local, path, first_line=line)
        line += len(rows)


def read_rows(path: Path, columns: Columns) -> Iterator[Row]:
    """The file's readings in file order (``.parquet``/``.pq`` as Parquet, anything else as CSV)."""
    if path.suffix.lower() in (".parquet", ".pq"):
        return _parquet(path, columns)
    return _csv(path, columns)
