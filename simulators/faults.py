"""Data faults: what a real collection system does to good data, placed before generation so labels are exact.

Faults are not anomalies: a robust pipeline must absorb them without a
single false alert, and each one is labelled (kind ``fault`` or, for
deliberately broken messages, ``malformed``) so that can be checked.

| fault | unit | what happens |
|---|---|---|
| gap | reading | one meter's reading of one interval is never delivered |
| duplicate | area upload | the interval's delivery is re-sent byte for byte, right after the original |
| late_upload | area upload | the interval's delivery arrives 2–8 intervals later |
| out_of_order | area upload | the interval's delivery arrives right after the next interval's |
| unit_wh | area upload | energies and registers sent in Wh (×1000), correctly labelled ``"unit": "Wh"`` |
| register_reset | meter | the meter is replaced: new archive record, ``meter_replaced`` event, register restarts near 0 |
| malformed | message | one bad message or reading per dead-letter reason, cycling through all reasons |

Faults never touch an anomalous meter nor an area's coverage-anomaly
window, and at most one upload-level fault (or embedded malformed
reading) hits one area upload, so every count in the summary has one
cause.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import schemas
from simulators.fleet import AreaFleet
from simulators.plan import Plan
from simulators.scenario import Scenario
from simulators.timegrid import TimeGrid, iso

__all__ = ["Malformed", "FaultPlan", "plan_faults", "MALFORMED_REASONS", "UPLOAD_FAULTS"]

FAULT_STREAM = 0xFA17
UPLOAD_FAULTS = ("duplicate", "late_upload", "out_of_order", "unit_wh")
MALFORMED_REASONS = schemas.enum("dead_letter_reason")  # one deliberately bad message per reason at least
_REPLACES_READING = frozenset({"nan", "negative_energy", "unknown_unit"})
_USES_METER = _REPLACES_READING | {"future_timestamp", "misaligned_timestamp"}
_IN_UPLOAD = _REPLACES_READING | {"unknown_meter"}


@dataclass(frozen=True, slots=True)
class Malformed:
    """One deliberately bad raw message (or reading inside an upload)."""

    reason: str
    ref: str  # unique, also written into the message where the contract leaves room
    area: int
    g: int
    meter: int | None  # the real meter whose reading it replaces or imitates
    in_upload: bool  # a bad item inside an otherwise valid concentrator upload
    variant: int  # which flavour of the reason (schema violation kind, non-JSON text)

    @property
    def replaces_reading(self) -> bool:
        return self.reason in _REPLACES_READING


@dataclass(slots=True)
class FaultPlan:
    """Every fault of a run, keyed for the generator's day and interval loops."""

    gaps: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)  # day -> [(area, m, g)]
    upload: dict[tuple[int, int], tuple[str, int]] = field(default_factory=dict)  # (area, g) -> (fault, delay)
    # (area, g) -> [(m, register units the new meter starts from, installed_at)]
    resets: dict[tuple[int, int], list[tuple[int, int, str]]] = field(default_factory=dict)
    malformed: dict[tuple[int, int], list[Malformed]] = field(default_factory=dict)  # (area, g) -> messages

    def gap_list(self) -> list[tuple[int, int, int]]:
        return [gap for day in sorted(self.gaps) for gap in self.gaps[day]]


def _count(rate: float, opportunities: float, minimum: int = 1) -> int:
    return 0 if rate <= 0 else max(minimum, int(round(rate * opportunities)))


def plan_faults(scenario: Scenario, fleets: list[AreaFleet], grid: TimeGrid, plan: Plan, per_reading: bool) -> FaultPlan:
    """Place the scenario's data faults (deterministic in the seed)."""
    rng = np.random.default_rng([scenario.seed, FAULT_STREAM])
    rates = scenario.faults
    total, ppd = grid.total, grid.points_per_day
    n_areas = len(fleets)
    faults = FaultPlan()
    taken: set[tuple[int, int, int]] = set()  # (area, m, g) a fault already uses

    def healthy(a: int, m: int, g: int) -> bool:
        return (a, m) not in plan.anomalous and (a, m, g) not in taken and not plan.in_coverage_window(a, g)

    def random_healthy(a: int, g: int) -> int | None:
        for m in rng.permutation(fleets[a].size):
            if healthy(a, int(m), g):
                return int(m)
        return None

    uploads = n_areas * total
    n_upload = {name: _count(getattr(rates, name), uploads) for name in UPLOAD_FAULTS}
    n_malformed = _count(rates.malformed, uploads, minimum=len(MALFORMED_REASONS))
    reasons = [MALFORMED_REASONS[i % len(MALFORMED_REASONS)] for i in range(n_malformed)]
    embedded = [] if per_reading else [i for i, r in enumerate(reasons) if r in _IN_UPLOAD]

    # Upload-level faults and embedded malformed readings each get an upload of their own,
    # away from the run's last intervals so a delay still lands inside the run.
    span = max(1, total - 9)
    wanted = sum(n_upload.values()) + len(embedded)
    slots = rng.choice(n_areas * span, size=min(wanted, n_areas * span), replace=False)
    slot_iter = iter((int(s) // span, int(s) % span) for s in slots)

    for name in UPLOAD_FAULTS:
        for _ in range(n_upload[name]):
            slot = next(slot_iter, None)
            if slot is None:
                break
            delay = {"late_upload": int(rng.integers(2, 9)), "out_of_order": 1}.get(name, 0)
            faults.upload[slot] = (name, delay)

    # Meter replacements.
    n_resets = _count(rates.register_reset, scenario.meters * grid.days / 30.0)
    for _ in range(n_resets):
        for _attempt in range(50):
            a, g = int(rng.integers(n_areas)), int(rng.integers(1, total))
            m = random_healthy(a, g)
            if m is not None and all(m != r[0] for r in faults.resets.get((a, g), [])):
                break
        else:
            continue
        taken.update((a, m, gg) for gg in range(total))  # the new meter is left alone
        installed = iso(grid.ts_epoch(g) - int(rng.integers(60, grid.interval_s - 60)))
        units = int(rng.integers(0, 20000))  # 0-2 kWh left from the factory test
        faults.resets.setdefault((a, g), []).append((m, units, installed))

    # Malformed messages, cycling through every dead-letter reason.
    embedded_set = set(embedded)
    schema_variant = 0
    for i, reason in enumerate(reasons):
        if i in embedded_set:
            slot = next(slot_iter, None)
            if slot is None:
                continue
            a, g = slot
        else:
            a, g = int(rng.integers(n_areas)), int(rng.integers(0, total))
        meter = None
        if reason in _USES_METER:
            meter = random_healthy(a, g)
            if meter is None:
                continue
            if reason in _REPLACES_READING:
                taken.add((a, meter, g))
        variant = 0
        if reason == "schema":
            variant, schema_variant = schema_variant, schema_variant + 1
        elif reason == "not_json":
            variant = i // len(MALFORMED_REASONS)
        faults.malformed.setdefault((a, g), []).append(
            Malformed(reason, f"MAL{i + 1:06d}", a, g, meter, i in embedded_set, variant)
        )

    # Gaps: isolated readings of healthy meters.
    n_gaps = _count(rates.gap, scenario.meters * total)
    sizes = np.array([f.size for f in fleets])
    offsets = np.concatenate([[0], np.cumsum(sizes * total)])
    population = int(offsets[-1])
    draws = rng.choice(population, size=min(population, 2 * n_gaps + 16), replace=False)
    placed = 0
    for flat in draws:
        if placed == n_gaps:
            break
        a = int(np.searchsorted(offsets, flat, side="right") - 1)
        m, g = divmod(int(flat - offsets[a]), total)
        if not healthy(a, m, g) or not healthy(a, m, g - 1) or not healthy(a, m, g + 1):
            continue
        taken.add((a, m, g))
        faults.gaps.setdefault(g // ppd, []).append((a, m, g))
        placed += 1
    for day in faults.gaps:
        faults.gaps[day].sort(key=lambda x: (x[2], x[0], x[1]))
    return faults
