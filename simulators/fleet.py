"""The simulated fleet: transformer areas, their customer meters and the archive records that describe them.

Each area is drawn from its own random stream ``(seed, area index)``, so
adding areas never changes the ones already there. Arrays are columnar
(one entry per meter) because the generator works on whole areas at once.

Realism that the anomaly planner relies on:
- every area has one *anchor* customer, an industrial CT-metered plant
  using 15–25 % of the area's energy (large enough to move the area's
  loss when it steals or is mapped to the wrong area);
- CT ratios are chosen so full contracted load stays within the meter's
  secondary rating (5 A), as a utility sizes them;
- the area meter's CT and the transformer rating follow the area's load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simulators.timegrid import TimeGrid, iso

__all__ = [
    "CUSTOMER_CLASSES",
    "RESIDENTIAL",
    "COMMERCIAL",
    "INDUSTRIAL",
    "AGRICULTURAL",
    "NOMINAL_VOLTAGE_V",
    "AreaFleet",
    "build_fleet",
    "area_rng",
]

CUSTOMER_CLASSES = ("residential", "commercial", "industrial", "agricultural")
RESIDENTIAL, COMMERCIAL, INDUSTRIAL, AGRICULTURAL = range(4)
NOMINAL_VOLTAGE_V = 220.0

# Random streams per area: one for the fleet itself, one for the daily
# physics, one for delivery noise. Separate streams keep, e.g., the load of
# an area identical whether or not faults are switched on.
STREAM_FLEET, STREAM_PHYSICS, STREAM_CLOCK = 0, 1, 2

_CT_RATIOS = np.array([10, 15, 20, 30, 40, 50, 60, 80, 100, 150, 200, 300, 400])
_TRANSFORMER_KVA = np.array([100, 160, 200, 250, 315, 400, 500, 630, 800, 1000, 1250])
_CLASS_MIX = np.array([0.84, 0.11, 0.02, 0.03])  # residential, commercial, industrial, agricultural
_PHASE_SPREAD = 0.35  # per-phase share = 1/3 + this × (Dirichlet(40, 40, 40) − 1/3): σ ≈ 1.5 % of the load


def area_rng(seed: int, area_index: int, stream: int) -> np.random.Generator:
    """The random stream ``stream`` of area ``area_index`` (1-based) for ``seed``."""
    return np.random.default_rng([seed, area_index, stream])


def _ct_ratio(kva: np.ndarray | float) -> np.ndarray:
    """Smallest standard CT ratio that keeps contracted three-phase load under 5 A secondary."""
    needed = np.asarray(kva, dtype=float) * 1000.0 / (3 * NOMINAL_VOLTAGE_V * 5.0)
    idx = np.searchsorted(_CT_RATIOS, needed)
    return _CT_RATIOS[np.minimum(idx, len(_CT_RATIOS) - 1)]


@dataclass(slots=True, eq=False)
class AreaFleet:
    """One transformer area: its archive facts plus the hidden physics of each meter."""

    index: int
    area_id: str
    concentrator_id: str
    area_meter_id: str
    meter_ids: list[str]
    customer_class: np.ndarray  # int codes into CUSTOMER_CLASSES
    phases: np.ndarray  # 1 or 3
    contracted_kva: np.ndarray
    multiplier: np.ndarray  # int, as archived (and, unless an anomaly says otherwise, real)
    has_generation: np.ndarray  # bool
    status: list[str]
    basic_current_a: np.ndarray
    max_current_a: np.ndarray
    installed_at: list[str]
    # Hidden physics, never published.
    level_kw: np.ndarray  # mean demand
    pv_peak_kw: np.ndarray  # 0 without generation
    supply_phase: np.ndarray  # 0..2: the phase a single-phase meter hangs on
    base_pf: np.ndarray
    phase_share: np.ndarray  # (M, 3) split of a three-phase load
    feeder_drop: np.ndarray  # extra voltage drop at full area load (distance from the transformer)
    clock_offset_s: np.ndarray  # the meter clock's steady offset, within tolerance
    register_init: np.ndarray  # int64, 1e-4 kWh units, secondary side
    area_multiplier: int
    area_rated_kva: int
    loss_rate: float  # technical loss, share of supplied energy
    loss_limit_pct: float
    v_base: float  # no-load voltage / nominal at the transformer
    v_sag: float  # drop at full area load
    phase_offset: np.ndarray  # (3,) per-phase voltage offset ratio
    area_register_init: int

    @property
    def size(self) -> int:
        return len(self.meter_ids)

    @property
    def expected_kwh_day(self) -> np.ndarray:
        """Rough daily energy per meter, used by the planner to pick meters big enough for an effect."""
        active = np.array([s == "active" for s in self.status])
        return self.level_kw * 24.0 * active

    def meter_record(self, m: int) -> dict[str, Any]:
        return {
            "meter_id": self.meter_ids[m],
            "customer_class": CUSTOMER_CLASSES[int(self.customer_class[m])],
            "phases": int(self.phases[m]),
            "contracted_kva": float(self.contracted_kva[m]),
            "multiplier": int(self.multiplier[m]),
            "has_generation": bool(self.has_generation[m]),
            "status": self.status[m],
            "nominal_voltage_v": NOMINAL_VOLTAGE_V,
            "basic_current_a": float(self.basic_current_a[m]),
            "max_current_a": float(self.max_current_a[m]),
            "installed_at": self.installed_at[m],
        }

    def archive_record(self, updated_at: str) -> dict[str, Any]:
        """The area's record on the archive topic (schemas/area_archive.json)."""
        return {
            "area_id": self.area_id,
            "updated_at": updated_at,
            "concentrator_id": self.concentrator_id,
            "area_meter": {
                "meter_id": self.area_meter_id,
                "multiplier": int(self.area_multiplier),
                "rated_kva": int(self.area_rated_kva),
            },
            "loss_limit_pct": self.loss_limit_pct,
            "meters": [self.meter_record(m) for m in range(self.size)],
        }


def _build_area(seed: int, index: int, meters: int, grid: TimeGrid) -> AreaFleet:
    rng = area_rng(seed, index, STREAM_FLEET)
    n = meters
    cls = rng.choice(4, size=n, p=_CLASS_MIX)
    cls[0] = INDUSTRIAL  # the anchor
    phases = np.where(cls == RESIDENTIAL, 1, 3)
    phases[(cls == COMMERCIAL) & (rng.random(n) < 0.15)] = 1
    phases[(cls == AGRICULTURAL) & (rng.random(n) < 0.3)] = 1

    kva = np.empty(n)
    level = np.empty(n)
    for code, sizes, lo, hi in (
        (RESIDENTIAL, [4, 6, 8, 10], 0.0, 0.0),
        (COMMERCIAL, [15, 25, 40, 63, 80, 100], 0.08, 0.2),
        (INDUSTRIAL, [100, 160, 200, 250], 0.12, 0.25),
        (AGRICULTURAL, [10, 15, 20, 30], 0.05, 0.15),
    ):
        sel = cls == code
        kva[sel] = rng.choice(sizes, size=int(sel.sum()))
        level[sel] = kva[sel] * rng.uniform(lo, hi, size=int(sel.sum()))
    res = cls == RESIDENTIAL
    level[res] = np.clip(rng.lognormal(np.log(0.42), 0.45, size=int(res.sum())), 0.08, 1.5)
    # Single-phase commercial meters stay small enough for a 60 A meter.
    small = (phases == 1) & ~res
    kva[small] = np.minimum(kva[small], 10)
    level[small] = np.minimum(level[small], 2.0)

    # The anchor: an industrial plant using 15-25 % of the area's energy.
    share = rng.uniform(0.15, 0.25)
    level[0] = share * level[1:].sum() / (1.0 - share)
    size = min(np.searchsorted(_TRANSFORMER_KVA, level[0] * 3.0), len(_TRANSFORMER_KVA) - 1)
    kva[0] = max(100.0, float(_TRANSFORMER_KVA[size]))

    ct = (cls == INDUSTRIAL) | ((cls == COMMERCIAL) & (kva >= 63) & (phases == 3))
    multiplier = np.where(ct, _ct_ratio(kva), 1).astype(np.int64)
    basic = np.where(ct, 1.5, np.where(phases == 3, 10.0, 5.0))
    max_current = np.where(ct, 6.0, np.where(phases == 3, 100.0, 60.0))

    status = ["active"] * n
    for m in np.flatnonzero((rng.random(n) < 0.03) & res):
        status[m] = "inactive" if rng.random() < 0.6 else "closed"
    has_gen = res & (rng.random(n) < 0.05) & np.array([s == "active" for s in status])
    pv_peak = np.where(has_gen, rng.uniform(2.0, 6.0, size=n), 0.0)

    base_pf = np.select(
        [cls == RESIDENTIAL, cls == COMMERCIAL, cls == INDUSTRIAL],
        [rng.uniform(0.93, 0.99, n), rng.uniform(0.9, 0.97, n), rng.uniform(0.92, 0.97, n)],
        rng.uniform(0.87, 0.94, n),
    )
    # Near-balanced three-phase split. A healthy installation spreads its single-phase loads over
    # the phases: per-phase shares within a few % of 1/3, a (max − min)/max imbalance of about 9 %
    # on average, 15 % at the 90th percentile, practically never the 30 % of the imbalance rule.
    # (A raw Dirichlet(40, 40, 40) put a quarter of all three-phase customers above 30 %.) The
    # Dirichlet draw is shrunk towards 1/3 rather than redrawn with a larger concentration, so the
    # fleet's random stream, hence every other property of every area, stays as it was.
    share3 = 1.0 / 3.0 + _PHASE_SPREAD * (rng.dirichlet([40.0, 40.0, 40.0], size=n) - 1.0 / 3.0)
    installed = [
        iso(grid.start_epoch - int(days) * 86400)
        for days in rng.integers(200, 3000, size=n)
    ]
    register_init = (rng.lognormal(np.log(3000.0), 1.0, size=n) / multiplier * 1e4).astype(np.int64)

    expected_peak_kw = level.sum() * 2.2
    rated = int(_TRANSFORMER_KVA[min(np.searchsorted(_TRANSFORMER_KVA, expected_peak_kw / 0.75), len(_TRANSFORMER_KVA) - 1)])
    area_id = f"A{index:04d}"
    return AreaFleet(
        index=index,
        area_id=area_id,
        concentrator_id=f"C{index:04d}",
        area_meter_id=f"T{index:04d}",
        meter_ids=[f"M{index:04d}-{m + 1:04d}" for m in range(n)],
        customer_class=cls.astype(np.int8),
        phases=phases.astype(np.int8),
        contracted_kva=kva,
        multiplier=multiplier,
        has_generation=has_gen,
        status=status,
        basic_current_a=basic,
        max_current_a=max_current,
        installed_at=installed,
        level_kw=np.where([s == "active" for s in status], level, 0.0),
        pv_peak_kw=pv_peak,
        supply_phase=rng.integers(0, 3, size=n),
        base_pf=base_pf,
        phase_share=share3,
        feeder_drop=rng.uniform(0.0, 0.03, size=n),
        clock_offset_s=np.clip(np.rint(rng.normal(0.0, 3.0, size=n)), -20, 20).astype(np.int64),
        register_init=register_init,
        area_multiplier=int(_ct_ratio(rated)),
        area_rated_kva=rated,
        loss_rate=float(rng.uniform(0.02, 0.06)),
        loss_limit_pct=10.0,
        v_base=float(rng.uniform(1.0, 1.045)),
        v_sag=float(rng.uniform(0.02, 0.05)),
        phase_offset=rng.normal(0.0, 0.005, size=3),
        area_register_init=int(rng.uniform(1e4, 1e5) * 1e4),
    )


def build_fleet(seed: int, areas: int, meters_per_area: int, grid: TimeGrid) -> list[AreaFleet]:
    """Areas ``A0001``… with ``meters_per_area`` meters each."""
    if meters_per_area < 2:
        raise ValueError("an area needs at least two meters (one is the anchor customer)")
    return [_build_area(seed, i, meters_per_area, grid) for i in range(1, areas + 1)]
