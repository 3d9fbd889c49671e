"""Where and when each anomaly lands: the scenario's counts turned into concrete injections.

The plan is drawn from its own random stream (seed only), before any
data is generated, so the labels are known up front and exact. Rules
that keep the ground truth clean:

- one anomaly per meter; data faults never touch an anomalous meter;
- at most one *balance* anomaly per area (tap, thief, wrong multiplier,
  either side of a wrong-area pair), so an area's loss has one cause;
- at most one *coverage* anomaly per area (area missing data,
  uncomputable), whose missing meters are drawn among healthy meters;
- effects are sized to be unmistakable: a thief steals enough to push
  its area past the loss limit, a wrong-area meter is large enough to
  make its archived area's loss clearly negative.

Kinds that find no suitable meter or area (a fleet too small) are
skipped and reported in ``Plan.skipped``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulators.anomalies import INJECTORS, POOLS, Injection, Timing
from simulators.fleet import RESIDENTIAL, AreaFleet
from simulators.scenario import AREA_ANOMALY_WEIGHTS, METER_ANOMALY_WEIGHTS, Scenario
from simulators.timegrid import TimeGrid

__all__ = ["Plan", "make_plan"]

PLAN_STREAM = 0x5EED

# Where to look when a kind's preferred pool is exhausted.
_FALLBACK: dict[str, tuple[str, ...]] = {
    "household": ("ordinary",),
    "spike_room": ("household", "ordinary"),
    "three_phase": ("three_phase_any",),
    "large_pf": ("ct", "three_phase_any"),
}


@dataclass(slots=True)
class Plan:
    """All injections of a run, plus what the planner could not place."""

    injections: list[Injection] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    anomalous: set[tuple[int, int]] = field(default_factory=set)  # (area, meter)
    coverage_windows: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # area -> [(start, end)]

    def in_coverage_window(self, area: int, g: int) -> bool:
        return any(lo <= g <= hi for lo, hi in self.coverage_windows.get(area, ()))


class _Planner:
    def __init__(self, scenario: Scenario, fleets: list[AreaFleet], grid: TimeGrid) -> None:
        self.s = scenario
        self.fleets = fleets
        self.grid = grid
        self.rng = np.random.default_rng([scenario.seed, PLAN_STREAM])
        self.first = scenario.first_anomaly_interval(grid.points_per_day)
        self.plan = Plan()
        self.used: list[set[int]] = [set() for _ in fleets]
        self.balance_busy: set[int] = set()
        self.coverage_busy: set[int] = set()
        self.cursor = 0
        self.order = list(self.rng.permutation(len(fleets)))

    # --- time windows ------------------------------------------------------------------------

    def window(self, timing: Timing) -> tuple[int, int | None]:
        total, ppd = self.grid.total, self.grid.points_per_day
        room = max(1, (total - self.first) // 3)
        start = min(self.first + int(self.rng.integers(0, room)), total - 1)
        if timing.day_aligned:
            start = min(-(-start // ppd) * ppd, (total - 1) // ppd * ppd)
        if timing.kind == "ongoing":
            return start, None
        if timing.kind == "point":
            return start, start
        n = int(self.rng.integers(timing.lo, timing.hi + 1)) * (ppd if timing.unit == "days" else 1)
        if timing.day_aligned and start + n > total:
            start = max(0, total - n) // ppd * ppd
        end = start + n - 1
        return (start, end) if end <= total - 1 else (start, None)

    # --- meter choice --------------------------------------------------------------------------

    def free(self, a: int, pool: str) -> np.ndarray:
        mask = POOLS[pool](self.fleets[a])
        if self.used[a]:
            mask[list(self.used[a])] = False
        return np.flatnonzero(mask)

    def pick_meter(self, pool: str) -> tuple[int, int] | None:
        for name in (pool, *_FALLBACK.get(pool, ())):
            for step in range(len(self.fleets)):
                a = self.order[(self.cursor + step) % len(self.fleets)]
                free = self.free(a, name)
                if len(free):
                    self.cursor = (self.cursor + step + 1) % len(self.fleets)
                    return a, int(self.rng.choice(free))
        return None

    def add(self, inj: Injection) -> Injection:
        self.plan.injections.append(inj)
        if inj.meter is not None and inj.subject_kind == "meter":
            self.used[inj.area].add(inj.meter)
            self.plan.anomalous.add((inj.area, inj.meter))
        return inj

    def areas_in_order(self) -> list[int]:
        return [int(a) for a in self.rng.permutation(len(self.fleets))]

    def share(self, a: int) -> np.ndarray:
        kwh = self.fleets[a].expected_kwh_day
        return kwh / kwh.sum()

    # --- area-level injections -----------------------------------------------------------------

    def tap(self) -> bool:
        for a in self.areas_in_order():
            if a in self.balance_busy:
                continue
            f = self.fleets[a]
            share = float(self.rng.uniform(0.12, 0.25))
            start, end = self.window(Timing("ongoing"))
            homes = tuple(int(m) for m in np.flatnonzero(f.customer_class == RESIDENTIAL)) or (0,)
            self.balance_busy.add(a)
            self.add(Injection("area_high_loss", "tap", "area", a, None, start, end,
                               {"tap_kw": round(share * float(f.level_kw.sum()), 3), "share_of_supply": round(share, 3)},
                               targets=homes))
            return True
        return False

    def thief(self) -> bool:
        for a in self.areas_in_order():
            if a in self.balance_busy:
                continue
            f = self.fleets[a]
            free = self.free(a, "ordinary")
            if not len(free):
                continue
            share = self.share(a)
            m = int(free[np.argmax(share[free])])
            needed = f.loss_limit_pct / 100.0 - f.loss_rate + 0.05
            alpha = float(np.clip(1.0 - needed / share[m], 0.05, 0.5))
            if share[m] * (1.0 - alpha) + f.loss_rate < f.loss_limit_pct / 100.0 + 0.02:
                continue
            start, end = self.window(Timing("ongoing"))
            self.balance_busy.add(a)
            self.add(Injection("theft_suspected", "bypass", "meter", a, m, start, end, {"alpha": round(alpha, 3)}))
            self.add(Injection("area_high_loss", "thief", "area", a, None, start, end,
                               {"thief_meter_id": f.meter_ids[m], "stolen_share": round(share[m] * (1 - alpha), 3)}))
            return True
        return False

    def wrong_multiplier(self) -> bool:
        for a in self.areas_in_order():
            if a in self.balance_busy:
                continue
            f = self.fleets[a]
            actual = int(f.area_multiplier * int(self.rng.choice([2, 3])))
            start, end = self.window(Timing("ongoing"))
            self.balance_busy.add(a)
            self.add(Injection("area_negative_loss", "wrong_multiplier", "area", a, None, start, end,
                               {"archived_multiplier": int(f.area_multiplier), "actual_multiplier": actual}))
            return True
        return False

    def wrong_area(self) -> bool:
        n = len(self.fleets)
        for a in self.areas_in_order():
            # A neighbour if free (cut-overs happen between adjacent transformers), else any free area.
            partners = [b for b in (a + 1, a - 1) if 0 <= b < n] + self.areas_in_order()
            for b in partners:
                if b == a or {a, b} & self.balance_busy:
                    continue
                fa, fb = self.fleets[a], self.fleets[b]
                free = self.free(a, "ordinary")
                if not len(free):
                    continue
                share = self.share(a)
                m = int(free[np.argmax(share[free])])
                if share[m] < (fa.loss_rate + 0.04) / (1.0 + fa.loss_rate):
                    continue
                start, end = self.window(Timing("ongoing"))
                self.balance_busy |= {a, b}
                moved = float(fa.expected_kwh_day[m])
                supply_b = float(fb.expected_kwh_day.sum())
                rate_b = 1.0 - supply_b / ((supply_b + moved) * (1.0 + fb.loss_rate))
                mid = fa.meter_ids[m]
                self.add(Injection("wrong_area", None, "meter", a, m, start, end,
                                   {"archived_area": fa.area_id, "fed_by_area": fb.area_id}, partner=b))
                self.add(Injection("area_negative_loss", "wrong_area", "area", a, None, start, end,
                                   {"meter_id": mid, "fed_by_area": fb.area_id}))
                if rate_b * 100.0 > fb.loss_limit_pct + 1.0:
                    self.add(Injection("area_high_loss", "wrong_area", "area", b, None, start, end,
                                       {"meter_id": mid, "archived_area": fa.area_id}))
                return True
        return False

    def coverage(self, key: tuple[str, str | None]) -> bool:
        for a in self.areas_in_order():
            if a in self.coverage_busy:
                continue
            f = self.fleets[a]
            healthy = np.array([m for m in range(f.size) if m not in self.used[a]])
            if len(healthy) < 4:
                continue
            timing = INJECTORS[key].timing
            start, end = self.window(timing)
            if key[0] == "area_loss_uncomputable":
                share = float(self.rng.uniform(0.25, 0.4))
                count = min(len(healthy), max(2, int(round(share * f.size))))
                targets = tuple(sorted(int(m) for m in self.rng.choice(healthy, count, replace=False)))
                params = {"missing_meters": len(targets), "missing_share": round(len(targets) / f.size, 3)}
            else:
                targets = tuple(int(m) for m in healthy)
                params = {"share": round(float(self.rng.uniform(0.06, 0.12)), 3)}
            self.coverage_busy.add(a)
            last = self.grid.total - 1 if end is None else end
            self.plan.coverage_windows.setdefault(a, []).append((start, last))
            self.add(Injection(key[0], key[1], "area", a, None, start, end, params, targets=targets))
            return True
        return False

    # --- the whole plan ------------------------------------------------------------------------

    def run(self) -> Plan:
        s = self.s
        coverage_keys = (("area_loss_uncomputable", None), ("missing_data", "area"))
        area_counts = {
            key: max(1, round(frac * s.areas)) if s.area_anomalies and s.plans(key) else 0
            for key, frac in AREA_ANOMALY_WEIGHTS.items()
        }
        placers = {  # pairs first: they need two free areas
            ("wrong_area", None): self.wrong_area,
            ("area_high_loss", "tap"): self.tap,
            ("area_high_loss", "thief"): self.thief,
            ("area_negative_loss", "wrong_multiplier"): self.wrong_multiplier,
        }
        for key, place in placers.items():
            for _ in range(area_counts[key]):
                if not place():
                    self.plan.skipped.append(f"{key[0]}/{key[1]}")
        anomalous = s.anomaly_rate * s.meters
        total_weight = sum(METER_ANOMALY_WEIGHTS.values())
        for key, weight in METER_ANOMALY_WEIGHTS.items():
            count = max(1, round(anomalous * weight / total_weight)) if s.anomaly_rate > 0 and s.plans(key) else 0
            injector = INJECTORS[key]
            for _ in range(count):
                picked = self.pick_meter(injector.pool or "ordinary")
                if picked is None:
                    self.plan.skipped.append(f"{key[0]}/{key[1]}")
                    continue
                a, m = picked
                start, end = self.window(injector.timing)
                params = injector.params(self.rng, self.fleets[a], m, self.grid.dt_h)
                self.add(Injection(key[0], key[1], "meter", a, m, start, end, params))
        for key in coverage_keys:
            for _ in range(area_counts[key]):
                if not self.coverage(key):
                    self.plan.skipped.append(f"{key[0]}/{key[1]}")
        self.plan.injections.sort(key=lambda i: (i.start, i.area, -1 if i.meter is None else i.meter, i.type))
        return self.plan


def make_plan(scenario: Scenario, fleets: list[AreaFleet], grid: TimeGrid) -> Plan:
    """The anomaly plan of a run (deterministic in the seed and the scenario)."""
    return _Planner(scenario, fleets, grid).run()
