"""Named scenario presets and the numbers that make a run: fleet size, period, anomaly plan, fault rates.

A scenario says *how many* of each anomaly and fault a run gets; where and
when they land is drawn by the planner from the seed. Counts come from
rates so a preset scales with the fleet, but every kind whose rate is
positive appears at least once: a small run still shows the whole
catalogue (the must-show: 5 areas × 40 meters × 2 days covers every
anomaly type, fault type and dead-letter reason).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

__all__ = [
    "AnomalyKey",
    "FaultRates",
    "Scenario",
    "PRESETS",
    "METER_ANOMALY_WEIGHTS",
    "AREA_ANOMALY_WEIGHTS",
    "anomaly_keys",
    "scenario",
]

AnomalyKey = tuple[str, str | None]
"""(catalogue type, variant) — the unit a plan counts."""

# Relative frequency of meter anomalies among anomalous meters. Theft is the
# reason the product exists, so it gets the largest share; every other type
# gets enough to be scored.
METER_ANOMALY_WEIGHTS: dict[AnomalyKey, float] = {
    ("theft_suspected", "bypass"): 8,
    ("theft_suspected", "tamper"): 5,
    ("theft_suspected", "h1"): 4,
    ("theft_suspected", "h2"): 4,
    ("theft_suspected", "h3"): 4,
    ("theft_suspected", "h4"): 4,
    ("theft_suspected", "h5"): 4,
    ("theft_suspected", "h6"): 4,
    ("consumption_swing", "up"): 4,
    ("consumption_swing", "down"): 4,
    ("sustained_drop", None): 5,
    ("register_decrease", None): 2,
    ("meter_stopped", None): 3,
    ("meter_flying", None): 2,
    ("clock_skew", None): 4,
    ("voltage_loss", None): 3,
    ("current_loss", None): 3,
    ("current_imbalance", None): 3,
    ("reverse_energy", None): 3,
    ("tamper_event", None): 3,
    ("over_capacity", None): 3,
    ("low_power_factor", None): 3,
    ("zero_consumption", None): 3,
    ("usage_on_inactive", None): 2,
    ("interval_spike", None): 3,
    ("multiplier_mismatch", None): 2,
    ("missing_data", None): 3,
    ("duplicate_data", None): 3,
}

# Area-level injections, as a fraction of areas each. ``wrong_area`` is
# counted here because it moves a meter's energy between two areas: it
# yields a meter label plus the two area labels it causes.
AREA_ANOMALY_WEIGHTS: dict[AnomalyKey, float] = {
    ("area_high_loss", "tap"): 0.05,
    ("area_high_loss", "thief"): 0.05,
    ("area_negative_loss", "wrong_multiplier"): 0.03,
    ("wrong_area", None): 0.04,
    ("area_loss_uncomputable", None): 0.04,
    ("missing_data", "area"): 0.04,
}


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Data-fault rates; 0 disables a fault, any positive rate gives at least one.

    ``gap`` is per reading; ``duplicate``, ``late_upload``, ``out_of_order``,
    ``unit_wh`` and ``malformed`` per area upload (one area × one interval);
    ``register_reset`` per meter per 30 days; ``clock_noise`` is the share
    of meters whose clock wanders within tolerance (not labelled: it is
    not a fault a pipeline must tell apart, only noise it must tolerate).
    """

    gap: float = 0.0005
    duplicate: float = 0.002
    late_upload: float = 0.001
    out_of_order: float = 0.001
    unit_wh: float = 0.002
    register_reset: float = 0.002
    malformed: float = 0.001
    clock_noise: float = 0.1


@dataclass(frozen=True, slots=True)
class Scenario:
    """Everything that determines a run's output, apart from its shape (uploads or single readings)."""

    name: str
    areas: int
    meters_per_area: int
    days: int
    start: date = date(2026, 1, 5)
    interval_minutes: int = 15
    seed: int = 1
    anomaly_rate: float = 0.05
    """Share of meters that get a meter anomaly (each kind at least once when > 0)."""
    area_anomalies: bool = True
    """Whether area-level injections (high/negative loss, wrong area, uncomputable, area missing data) run."""
    warmup_days: int | None = None
    """Days before the first anomaly; None: 29 for runs longer than 35 days, else none (the second interval)."""
    faults: FaultRates = field(default_factory=FaultRates)
    anomalies: frozenset[AnomalyKey] | None = None
    """Only these kinds are planned (keys of the two weight tables), each as often as in the full
    catalogue; None: every kind. ``("area_high_loss", "thief")`` places a bypass thief and its area."""

    @property
    def meters(self) -> int:
        return self.areas * self.meters_per_area

    def first_anomaly_interval(self, points_per_day: int) -> int:
        """Global interval index where anomalies may start (detectors need a baseline first)."""
        warmup = self.warmup_days
        if warmup is None:
            warmup = 29 if self.days > 35 else 0
        if warmup <= 0:
            return 1
        return min(warmup, self.days - 1) * points_per_day

    def plans(self, key: AnomalyKey) -> bool:
        """Whether this kind may be planned at all (see ``anomalies``)."""
        return self.anomalies is None or key in self.anomalies

    def with_overrides(self, **overrides: Any) -> Scenario:
        """This scenario with the given fields replaced; ``None`` values are ignored."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


PRESETS: dict[str, Scenario] = {
    # A quick look at everything: the whole catalogue in a couple of days.
    "demo": Scenario(name="demo", areas=5, meters_per_area=40, days=2),
    # A month of baseline plus two weeks of anomalies, for backtests and evaluation.
    "small": Scenario(name="small", areas=10, meters_per_area=50, days=42),
    # The load test: 50 areas × 100 meters × 60 days at 15 minutes, 28.8 M readings.
    "standard": Scenario(name="standard", areas=50, meters_per_area=100, days=60),
    # One bypass thief and the high loss it causes in its area, nothing else and no data faults:
    # the inspection loop end to end (theft alert → inspection → monthly report). Fourteen days of
    # history (the consumption rules' min_history_days) before the theft starts (within the next
    # 32 h, seeded); theft_suspected opens when the first or second day judged with the theft
    # closes, and a stream closes a day only two hours after its midnight: four days leave room.
    "bypass": Scenario(
        name="bypass", areas=1, meters_per_area=20, days=18, warmup_days=14,
        anomalies=frozenset({("area_high_loss", "thief")}),
        faults=FaultRates(gap=0, duplicate=0, late_upload=0, out_of_order=0, unit_wh=0, register_reset=0, malformed=0),
    ),
}


def anomaly_keys(text: str) -> frozenset[AnomalyKey] | None:
    """Kinds from ``type[/variant],…`` (e.g. ``area_high_loss/thief,clock_skew``); ``all``: None (every kind)."""
    if text.strip() == "all":
        return None
    known = {*METER_ANOMALY_WEIGHTS, *AREA_ANOMALY_WEIGHTS}
    keys = set()
    for item in filter(None, (part.strip() for part in text.split(","))):
        type_, _, variant = item.partition("/")
        key = (type_, variant or None)
        if key not in known:
            choices = ", ".join(sorted(t if v is None else f"{t}/{v}" for t, v in known))
            raise ValueError(f"unknown anomaly kind {item!r}; choose from {choices}")
        keys.add(key)
    if not keys:
        raise ValueError("no anomaly kind given (use 'all' for every kind)")
    return frozenset(keys)


def scenario(name: str, **overrides: Any) -> Scenario:
    """The preset ``name`` with command-line overrides applied."""
    try:
        base = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(PRESETS)}") from None
    return base.with_overrides(**overrides)
