"""The anomaly catalogue as injectors: how each type changes the data, and what ground truth it leaves.

An ``Injection`` is one planned anomaly (type, variant, subject, window,
parameters); its ``Injector`` knows which meters suit it (``pool``), how
long it lasts (``timing``), how to draw its parameters, and how it edits
an ``AreaDay`` at each stage of generation:

``load``     genuine consumption changes (swing, sustained drop, over capacity, use on an inactive account)
``topology`` which transformer feeds a meter (wrong area)
``measure``  what the meter measures (bypass, tamper, phase faults, stopped, reversed wiring, power factor, clock)
``report``   what the meter reports (the Jokar et al. 2016 false-data attacks h1–h6, flying, spikes, register jumps)
``deliver``  what reaches the head-end (missing data, conflicting re-sends)

The area meter's CT (wrong multiplier), taps and meters' real CT ratios
are edited on the day's arrays by the ``measure`` hook.

Jokar et al. 2016 attack parameters (their Table/eqs. as used in the
literature): h1 α ∈ [0.1, 0.8]; h2 off for t_d ∈ [4, 24) h starting at
t_s ∈ [0, 24 − t_d]; h3 and h4 per-interval γ_t ∈ [0.1, 0.8]; h5 the day's
mean; h6 the day reversed. h2, h4, h5 and h6 act on whole days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from simulators.areaday import AreaDay
from simulators.fleet import INDUSTRIAL, NOMINAL_VOLTAGE_V, RESIDENTIAL, AreaFleet
from simulators.scenario import AnomalyKey

__all__ = ["Injection", "Timing", "Injector", "INJECTORS", "POOLS", "TAMPER_CODES", "rated_max_kwh"]

TAMPER_CODES = ("cover_open", "terminal_cover_open", "magnetic_field")
_FAR_FUTURE = 1 << 62


@dataclass(slots=True)
class Injection:
    """One planned anomaly; ``end`` is the last affected interval (inclusive), None while it lasts."""

    type: str
    variant: str | None
    subject_kind: str
    area: int  # position of the subject's (archived) area
    meter: int | None
    start: int
    end: int | None
    params: dict[str, Any] = field(default_factory=dict)
    targets: tuple[int, ...] = ()  # meters an area-level injection acts on (not published)
    partner: int | None = None  # wrong_area: position of the feeding area

    @property
    def key(self) -> AnomalyKey:
        return (self.type, self.variant)

    def window(self, g0: int, points: int) -> slice | None:
        """The part of day [g0, g0 + points) this injection covers, as a local slice."""
        lo = max(self.start, g0)
        hi = min(_FAR_FUTURE if self.end is None else self.end, g0 + points - 1)
        return slice(lo - g0, hi - g0 + 1) if lo <= hi else None


@dataclass(frozen=True, slots=True)
class Timing:
    """How long an injection lasts: ``ongoing`` (to the end of the run), a ``span`` or a ``point``."""

    kind: str
    lo: int = 0
    hi: int = 0
    unit: str = "intervals"  # or "days"
    day_aligned: bool = False  # starts at midnight (attacks that act on whole days)


ONGOING = Timing("ongoing")
POINT = Timing("point")


def rated_max_kwh(fleet: AreaFleet, m: int, dt_h: float) -> float:
    """Most energy the meter's rating allows in one interval, primary side (Imax × Un × phases × dt × CT)."""
    return float(fleet.max_current_a[m] * NOMINAL_VOLTAGE_V * fleet.phases[m] * fleet.multiplier[m] * dt_h / 1000.0)


def _ordinary(f: AreaFleet) -> np.ndarray:
    return np.array([s == "active" for s in f.status]) & ~f.has_generation


POOLS: dict[str, Any] = {
    # Households that use enough for a change to be visible (≥ 4 kWh/day).
    "household": lambda f: _ordinary(f) & (f.customer_class == RESIDENTIAL) & (f.expected_kwh_day >= 4.0),
    # Three-phase customers other than the anchor plant.
    "three_phase": lambda f: _ordinary(f) & (f.phases == 3) & (np.arange(f.size) > 0),
    "three_phase_any": lambda f: _ordinary(f) & (f.phases == 3),
    "ct": lambda f: _ordinary(f) & (f.multiplier > 1),
    "large_pf": lambda f: _ordinary(f) & (f.customer_class == INDUSTRIAL),
    "inactive": lambda f: np.array([s != "active" for s in f.status]),
    "ordinary": _ordinary,
    # Households a spike can stand out on: a typical daily peak (up to ~5 × mean demand) times the
    # catalogue's 2.5, with margin, still fits under the 0.8 × rating a spike is capped at (so a
    # spike never reads as a flying meter and still meets the rule against the meter's peak history).
    "spike_room": lambda f: _ordinary(f) & (f.customer_class == RESIDENTIAL) & (f.expected_kwh_day >= 4.0)
    & (20.0 * f.level_kw * 1000.0 <= f.max_current_a * NOMINAL_VOLTAGE_V * f.phases * f.multiplier),
    # Room for 1.5 × contracted load within the meter's current rating.
    "capacity": lambda f: _ordinary(f)
    & (1.5 * f.contracted_kva * 1000.0 / (NOMINAL_VOLTAGE_V * f.phases) / f.multiplier <= 0.8 * f.max_current_a),
}


class Injector:
    """Base: an anomaly that does nothing at any stage (label-only injections use it as is)."""

    pool: ClassVar[str | None] = "household"
    timing: ClassVar[Timing] = ONGOING

    def params(self, rng: np.random.Generator, fleet: AreaFleet, m: int | None, dt_h: float) -> dict[str, Any]:
        return {}

    def load(self, day: AreaDay, inj: Injection, sl: slice) -> None:
        """Edit true consumption (``day.load``) before flows are computed."""

    def topology(self, day: AreaDay, inj: Injection, sl: slice) -> None:
        """Edit which transformer feeds a meter (``day.fed_by``), before area flows are summed."""

    def measure(self, day: AreaDay, inj: Injection, sl: slice) -> None:
        """Edit measurement (``meas_*``, ``current``, ``voltage``, ``pf``, clocks, events)."""

    def report(self, day: AreaDay, inj: Injection, sl: slice) -> None:
        """Edit reported energy and register steps."""

    def deliver(self, day: AreaDay, inj: Injection, sl: slice) -> None:
        """Edit what reaches the head-end."""


def _u(rng: np.random.Generator, lo: float, hi: float, nd: int = 3) -> float:
    return round(float(rng.uniform(lo, hi)), nd)


# --- genuine consumption changes -------------------------------------------------------------


class SwingUp(Injector):
    timing = Timing("span", 1, 3, "days")

    def params(self, rng, fleet, m, dt_h):
        return {"factor": _u(rng, 2.2, 3.5, 2)}

    def load(self, day, inj, sl):
        m = inj.meter
        ceiling = 0.9 * day.fleet.contracted_kva[m] * day.fleet.base_pf[m]
        day.load[m, sl] = np.minimum(day.load[m, sl] * inj.params["factor"], ceiling)


class SwingDown(Injector):
    timing = Timing("span", 1, 2, "days")

    def params(self, rng, fleet, m, dt_h):
        return {"factor": _u(rng, 0.1, 0.35, 2)}

    def load(self, day, inj, sl):
        day.load[inj.meter, sl] *= inj.params["factor"]


class SustainedDrop(Injector):
    """A lasting genuine drop (the household shrank): the area's loss does not move."""

    def params(self, rng, fleet, m, dt_h):
        return {"factor": _u(rng, 0.25, 0.55, 2)}

    def load(self, day, inj, sl):
        day.load[inj.meter, sl] *= inj.params["factor"]


class OverCapacity(Injector):
    pool = "capacity"
    timing = Timing("span", 3, 8)

    def params(self, rng, fleet, m, dt_h):
        return {"demand_ratio": _u(rng, 1.2, 1.5, 2), "contracted_kva": float(fleet.contracted_kva[m])}

    def load(self, day, inj, sl):
        day.load[inj.meter, sl] = inj.params["demand_ratio"] * inj.params["contracted_kva"] / 1.05

    def measure(self, day, inj, sl):
        day.demand[inj.meter, sl] = inj.params["demand_ratio"] * inj.params["contracted_kva"]


class UsageOnInactive(Injector):
    pool = "inactive"

    def params(self, rng, fleet, m, dt_h):
        return {"kw": _u(rng, 0.6, 1.5, 2), "status": fleet.status[m]}

    def load(self, day, inj, sl):
        day.load[inj.meter, sl] = inj.params["kw"] * day.shape[inj.meter, sl]


# --- measurement ---------------------------------------------------------------------------------


class Bypass(Injector):
    """Part of the load is wired around the meter: it measures (and sees current of) only α."""

    def params(self, rng, fleet, m, dt_h):
        return {"alpha": _u(rng, 0.1, 0.5, 2)}

    def measure(self, day, inj, sl):
        a = inj.params["alpha"]
        day.meas_fwd[inj.meter, sl] *= a
        day.current[inj.meter, sl] *= a


class Tamper(Injector):
    """Cover opened or magnet applied, then one phase shunted (three-phase) or the element slowed."""

    pool = "three_phase"

    def params(self, rng, fleet, m, dt_h):
        if fleet.phases[m] == 3:
            return {"event": str(rng.choice(TAMPER_CODES[:2])), "phase": "abc"[int(rng.integers(3))]}
        return {"event": "magnetic_field", "factor": _u(rng, 0.3, 0.6, 2)}

    def measure(self, day, inj, sl):
        m = inj.meter
        if inj.start >= day.g0:
            day.add_event(m, sl.start, inj.params["event"])
        if "phase" in inj.params:
            ph = "abc".index(inj.params["phase"])
            day.meas_fwd[m, sl] *= 1.0 - day.fleet.phase_share[m, ph]
            day.current[m, sl, ph] = 0.0
        else:
            day.meas_fwd[m, sl] *= inj.params["factor"]
            day.current[m, sl] *= inj.params["factor"]


class VoltageLoss(Injector):
    pool = "three_phase"
    timing = Timing("span", 8, 48)

    def params(self, rng, fleet, m, dt_h):
        return {"phase": "abc"[int(rng.integers(3))], "voltage_ratio": _u(rng, 0.2, 0.6, 2)}

    def measure(self, day, inj, sl):
        m, ph, r = inj.meter, "abc".index(inj.params["phase"]), inj.params["voltage_ratio"]
        if inj.start >= day.g0:
            day.add_event(m, sl.start, "voltage_loss")
        day.voltage[m, sl, ph] = NOMINAL_VOLTAGE_V * r * (1.0 + day.rng.normal(0.0, 0.01, sl.stop - sl.start))
        day.meas_fwd[m, sl] *= 1.0 - day.fleet.phase_share[m, ph] * (1.0 - r)


class CurrentLoss(Injector):
    pool = "three_phase"
    timing = Timing("span", 1, 3, "days")

    def params(self, rng, fleet, m, dt_h):
        return {"phase": "abc"[int(rng.integers(3))]}

    def measure(self, day, inj, sl):
        m, ph = inj.meter, "abc".index(inj.params["phase"])
        if inj.start >= day.g0:
            day.add_event(m, sl.start, "current_loss")
        day.current[m, sl, ph] = 0.0
        day.meas_fwd[m, sl] *= 1.0 - day.fleet.phase_share[m, ph]


class CurrentImbalance(Injector):
    """Load moved onto one phase (a wiring or load change); energy unchanged."""

    pool = "three_phase"

    def params(self, rng, fleet, m, dt_h):
        shares = rng.permutation([0.65, 0.25, 0.10])
        return {"phase_shares": {p: float(s) for p, s in zip("abc", shares, strict=True)}}

    def measure(self, day, inj, sl):
        m = inj.meter
        old = day.fleet.phase_share[m]
        new = np.array([inj.params["phase_shares"][p] for p in "abc"])
        day.current[m, sl] *= new / old


class ReverseEnergy(Injector):
    """Reversed wiring (single-phase) or a reversed CT on one phase: energy runs into the reverse register."""

    pool = "ordinary"

    def params(self, rng, fleet, m, dt_h):
        if fleet.phases[m] == 3:
            ph = int(rng.integers(3))
            return {"phase": "abc"[ph], "fraction": round(float(fleet.phase_share[m, ph]), 3)}
        return {"fraction": 1.0}

    def measure(self, day, inj, sl):
        m, f = inj.meter, inj.params["fraction"]
        moved = day.meas_fwd[m, sl] * f
        day.meas_fwd[m, sl] -= moved
        day.meas_rev[m, sl] += moved


class ZeroConsumption(Injector):
    """The meter records nothing (no energy, no current) while the premises go on consuming."""

    def measure(self, day, inj, sl):
        day.meas_fwd[inj.meter, sl] = 0.0
        day.current[inj.meter, sl] = 0.0


class MeterStopped(Injector):
    """The register stops while current still flows (a failed metrology)."""

    timing = Timing("span", 2, 4, "days")

    def measure(self, day, inj, sl):
        day.meas_fwd[inj.meter, sl] = 0.0


class LowPowerFactor(Injector):
    pool = "large_pf"

    def params(self, rng, fleet, m, dt_h):
        return {"power_factor": _u(rng, 0.55, 0.75, 2)}

    def measure(self, day, inj, sl):
        m = inj.meter
        new = np.clip(inj.params["power_factor"] + day.rng.normal(0.0, 0.01, sl.stop - sl.start), 0.4, 0.8)
        day.current[m, sl] *= (day.pf[m, sl] / new)[:, None]
        day.pf[m, sl] = new


class ClockSkew(Injector):
    def params(self, rng, fleet, m, dt_h):
        return {"offset_s": int(rng.choice([-1, 1]) * rng.integers(400, 1800))}

    def measure(self, day, inj, sl):
        day.clock_offset_s[inj.meter, sl] = inj.params["offset_s"]
        if inj.start >= day.g0:
            day.add_event(inj.meter, sl.start, "clock_error")


class TamperEvent(Injector):
    timing = POINT

    def params(self, rng, fleet, m, dt_h):
        return {"code": str(rng.choice(TAMPER_CODES))}

    def measure(self, day, inj, sl):
        day.add_event(inj.meter, sl.start, inj.params["code"])


class MultiplierMismatch(Injector):
    """The CT was changed on site but not in the archive; the meter reports primary energy with the real ratio."""

    pool = "ct"

    def params(self, rng, fleet, m, dt_h):
        archived = int(fleet.multiplier[m])
        actual = archived * 2 if rng.random() < 0.5 else max(archived // 2, 5)
        return {"archived_multiplier": archived, "actual_multiplier": int(actual)}

    def measure(self, day, inj, sl):
        day.real_multiplier[inj.meter, sl] = inj.params["actual_multiplier"]


class WrongArea(Injector):
    """A line section is cut over to the neighbouring transformer; the archive still says the old area."""

    pool = None  # the planner picks a large meter

    def topology(self, day, inj, sl):
        day.fed_by[inj.meter, sl] = inj.partner


class AreaWrongMultiplier(Injector):
    """The area meter's CT was upgraded on site; the archive keeps the old ratio, so supply looks smaller."""

    pool = None

    def measure(self, day, inj, sl):
        day.area_real_multiplier[sl] = inj.params["actual_multiplier"]


class Tap(Injector):
    """An unmetered connection (私拉乱接) on the area's lines: only the area meter sees it."""

    pool = None

    def measure(self, day, inj, sl):
        shape = day.shape[np.asarray(inj.targets)].mean(axis=0)
        day.tap_kwh[sl] += inj.params["tap_kw"] * shape[sl] * day.dt_h


# --- reported data -----------------------------------------------------------------------------


class H1(Injector):
    def params(self, rng, fleet, m, dt_h):
        return {"alpha": _u(rng, 0.1, 0.8, 2)}

    def report(self, day, inj, sl):
        day.reported[inj.meter, sl] *= inj.params["alpha"]


class H2(Injector):
    timing = Timing("ongoing", day_aligned=True)

    def params(self, rng, fleet, m, dt_h):
        duration = _u(rng, 4.0, 23.0, 2)
        return {"off_hours": duration, "off_start_hour": _u(rng, 0.0, 24.0 - duration, 2)}

    def report(self, day, inj, sl):
        hours = (np.arange(day.points) + 0.5) * day.dt_h
        lo = inj.params["off_start_hour"]
        off = (hours >= lo) & (hours < lo + inj.params["off_hours"])
        mask = np.zeros(day.points, dtype=bool)
        mask[sl] = off[sl]
        day.reported[inj.meter, mask] = 0.0


class H3(Injector):
    def params(self, rng, fleet, m, dt_h):
        return {"gamma_range": [0.1, 0.8]}

    def report(self, day, inj, sl):
        day.reported[inj.meter, sl] *= day.rng.uniform(0.1, 0.8, sl.stop - sl.start)


class H4(Injector):
    timing = Timing("ongoing", day_aligned=True)

    def params(self, rng, fleet, m, dt_h):
        return {"gamma_range": [0.1, 0.8]}

    def report(self, day, inj, sl):
        mean = day.reported[inj.meter].mean()
        day.reported[inj.meter, sl] = mean * day.rng.uniform(0.1, 0.8, sl.stop - sl.start)


class H5(Injector):
    timing = Timing("ongoing", day_aligned=True)

    def report(self, day, inj, sl):
        day.reported[inj.meter, sl] = day.reported[inj.meter].mean()


class H6(Injector):
    timing = Timing("ongoing", day_aligned=True)

    def report(self, day, inj, sl):
        day.reported[inj.meter] = day.reported[inj.meter, ::-1].copy()


class MeterFlying(Injector):
    """The meter races: each interval above what its current rating allows (飞走)."""

    timing = Timing("span", 4, 12)

    def params(self, rng, fleet, m, dt_h):
        limit = rated_max_kwh(fleet, m, dt_h)
        return {"factor_of_rated_max": _u(rng, 1.3, 2.0, 2), "rated_max_kwh": round(limit, 4)}

    def report(self, day, inj, sl):
        p = inj.params
        wobble = day.rng.uniform(0.95, 1.05, sl.stop - sl.start)
        day.reported[inj.meter, sl] = p["factor_of_rated_max"] * p["rated_max_kwh"] * wobble


class IntervalSpike(Injector):
    pool = "spike_room"
    timing = POINT

    def params(self, rng, fleet, m, dt_h):
        return {"factor": _u(rng, 4.0, 7.0, 2), "cap_kwh": round(0.8 * rated_max_kwh(fleet, m, dt_h), 4)}

    def report(self, day, inj, sl):
        m = inj.meter
        peak = day.reported[m].max()
        day.reported[m, sl] = min(peak * inj.params["factor"], inj.params["cap_kwh"])


class RegisterDecrease(Injector):
    timing = POINT

    def params(self, rng, fleet, m, dt_h):
        return {"drop_kwh": _u(rng, 5.0, 30.0, 2)}

    def report(self, day, inj, sl):
        day.register_steps.append((inj.meter, sl.start, -int(round(inj.params["drop_kwh"] * 1e4))))


# --- delivery ----------------------------------------------------------------------------------


class MissingMeter(Injector):
    timing = Timing("span", 6, 24)

    def deliver(self, day, inj, sl):
        day.delivered[inj.meter, sl] = False


class MissingArea(Injector):
    """The concentrator loses a changing share of its meters for some hours (collection rate < 98 %)."""

    pool = None
    timing = Timing("span", 8, 24)

    def deliver(self, day, inj, sl):
        targets = np.asarray(inj.targets)
        drop = day.rng.random((len(targets), sl.stop - sl.start)) < inj.params["share"]
        day.delivered[targets, sl] &= ~drop


class Uncomputable(Injector):
    """A channel of the concentrator fails for a whole day: too few meters to compute the loss."""

    pool = None
    timing = Timing("span", 1, 1, "days", day_aligned=True)

    def deliver(self, day, inj, sl):
        day.delivered[np.asarray(inj.targets), sl] = False


class DuplicateData(Injector):
    timing = POINT

    def params(self, rng, fleet, m, dt_h):
        return {"factor": _u(rng, 1.05, 1.5, 3)}

    def deliver(self, day, inj, sl):
        day.conflicts.append((inj.meter, sl.start, inj.params["factor"]))


INJECTORS: dict[AnomalyKey, Injector] = {
    ("consumption_swing", "up"): SwingUp(),
    ("consumption_swing", "down"): SwingDown(),
    ("sustained_drop", None): SustainedDrop(),
    ("theft_suspected", "bypass"): Bypass(),
    ("theft_suspected", "tamper"): Tamper(),
    ("theft_suspected", "h1"): H1(),
    ("theft_suspected", "h2"): H2(),
    ("theft_suspected", "h3"): H3(),
    ("theft_suspected", "h4"): H4(),
    ("theft_suspected", "h5"): H5(),
    ("theft_suspected", "h6"): H6(),
    ("register_decrease", None): RegisterDecrease(),
    ("meter_stopped", None): MeterStopped(),
    ("meter_flying", None): MeterFlying(),
    ("clock_skew", None): ClockSkew(),
    ("voltage_loss", None): VoltageLoss(),
    ("current_loss", None): CurrentLoss(),
    ("current_imbalance", None): CurrentImbalance(),
    ("reverse_energy", None): ReverseEnergy(),
    ("tamper_event", None): TamperEvent(),
    ("over_capacity", None): OverCapacity(),
    ("low_power_factor", None): LowPowerFactor(),
    ("zero_consumption", None): ZeroConsumption(),
    ("usage_on_inactive", None): UsageOnInactive(),
    ("interval_spike", None): IntervalSpike(),
    ("multiplier_mismatch", None): MultiplierMismatch(),
    ("wrong_area", None): WrongArea(),
    ("missing_data", None): MissingMeter(),
    ("missing_data", "area"): MissingArea(),
    ("duplicate_data", None): DuplicateData(),
    ("area_high_loss", "tap"): Tap(),
    ("area_high_loss", "thief"): Injector(),  # its bypass thief is a separate injection
    ("area_high_loss", "wrong_area"): Injector(),  # caused by the wrong_area injection
    ("area_negative_loss", "wrong_multiplier"): AreaWrongMultiplier(),
    ("area_negative_loss", "wrong_area"): Injector(),
    ("area_loss_uncomputable", None): Uncomputable(),
}
