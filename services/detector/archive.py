"""The customer archive of one transformer area, decoded into numpy arrays aligned by meter.

The archive record (``ami.archive``, one per area) lists the area's meters;
detectors need its per-meter facts (multiplier, phases, capacity, generation,
status, class, rated voltage/currents) next to every frame, so they are held as
arrays in the archive's meter order and frames are mapped onto that order with
:meth:`AreaArchive.indices`. Unknown numeric facts are NaN, which makes every
comparison against them false: a rule that needs a fact the archive lacks stays
silent rather than guessing.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.detector.eventtime import parse_ts

__all__ = ["AreaArchive", "CUSTOMER_CLASSES", "decode_archive"]

# Code of each customer class in AreaArchive.customer_class; -1 = not given / unknown.
CUSTOMER_CLASSES: tuple[str, ...] = ("residential", "commercial", "industrial", "agricultural")


@dataclass(frozen=True, slots=True, eq=False)
class AreaArchive:
    """One area's archive: ``meter_ids`` and per-meter arrays in the same order.

    ``installed_at`` is epoch s (0 when unknown); a new value for a meter means
    the meter was replaced and its register restarts.
    """

    area_id: str
    updated_at: int
    concentrator_id: str | None
    area_meter_id: str | None
    area_meter_multiplier: float
    area_rated_kva: float
    loss_limit_pct: float
    meter_ids: tuple[str, ...]
    multiplier: np.ndarray  # float64
    phases: np.ndarray  # int8, 1 or 3
    contracted_kva: np.ndarray  # float64
    has_generation: np.ndarray  # bool
    active: np.ndarray  # bool: status == "active"
    status: tuple[str, ...]
    customer_class: np.ndarray  # int8 codes into CUSTOMER_CLASSES, -1 unknown
    nominal_voltage_v: np.ndarray  # float64, phase voltage
    basic_current_a: np.ndarray  # float64, Ib
    max_current_a: np.ndarray  # float64, Imax
    installed_at: np.ndarray  # int64 epoch s
    # meter id → row, built on the first lookup of ids in another order (frames come in archive order):
    # ~50 bytes per meter a worker holding a million would otherwise keep for nothing.
    _index_of: dict[str, int] | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        """Number of archived meters."""
        return len(self.meter_ids)

    def phase_mask(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), 3) mask of the phases each meter has (single-phase: only ``a``)."""
        return np.arange(3)[None, :] < self.phases[rows][:, None]

    def indices(self, meter_ids: tuple[str, ...] | list[str]) -> np.ndarray:
        """Archive row of each id (int64), -1 for ids the archive does not list."""
        if len(meter_ids) == self.n and tuple(meter_ids) == self.meter_ids:  # ingest sends archive order
            return np.arange(self.n, dtype=np.int64)
        index = self._index_of
        if index is None:
            index = {m: i for i, m in enumerate(self.meter_ids)}
            object.__setattr__(self, "_index_of", index)
        get = index.get
        return np.fromiter((get(m, -1) for m in meter_ids), dtype=np.int64, count=len(meter_ids))


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def decode_archive(obj: dict[str, Any]) -> AreaArchive:
    """Decode an ``ami.archive`` record (schemas/README.md, "Archive")."""
    meters = obj.get("meters") or []
    area_meter = obj.get("area_meter") or {}

    def col(name: str) -> list[Any]:
        return [m.get(name) for m in meters]

    status = tuple(sys.intern(str(m.get("status", "active"))) for m in meters)  # a few values, shared
    classes = {c: i for i, c in enumerate(CUSTOMER_CLASSES)}
    ids = tuple(str(m["meter_id"]) for m in meters)
    return AreaArchive(
        area_id=str(obj["area_id"]),
        updated_at=parse_ts(obj["updated_at"]) if obj.get("updated_at") else 0,
        concentrator_id=obj.get("concentrator_id"),
        area_meter_id=area_meter.get("meter_id"),
        area_meter_multiplier=_num(area_meter.get("multiplier", 1.0)),
        area_rated_kva=_num(area_meter.get("rated_kva")),
        loss_limit_pct=_num(obj.get("loss_limit_pct")),
        meter_ids=ids,
        multiplier=np.array([1.0 if v is None else v for v in col("multiplier")], dtype=np.float64),
        phases=np.array([v or 1 for v in col("phases")], dtype=np.int8),
        contracted_kva=np.array(col("contracted_kva"), dtype=np.float64),
        has_generation=np.array([bool(v) for v in col("has_generation")], dtype=bool),
        active=np.array([s == "active" for s in status], dtype=bool),
        status=status,
        customer_class=np.array([classes.get(v, -1) for v in col("customer_class")], dtype=np.int8),
        nominal_voltage_v=np.array(col("nominal_voltage_v"), dtype=np.float64),
        basic_current_a=np.array(col("basic_current_a"), dtype=np.float64),
        max_current_a=np.array(col("max_current_a"), dtype=np.float64),
        installed_at=np.array([parse_ts(v) if v else 0 for v in col("installed_at")], dtype=np.int64),
    )
