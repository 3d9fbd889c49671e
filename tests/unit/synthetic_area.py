"""A synthetic transformer area for the statistical detector tests: numpy days, no Kafka, no frames.

Each meter has its own level (lognormal around 10 kWh/day), its own daily
shape (base load, a morning and an evening peak whose time and size vary by
household, different at weekends) and realistic noise: a day factor
(σ ≈ 12 %) and a multiplicative per-interval factor (σ ≈ 30 %, 15-minute
data is spiky). The area meter measures the true consumption plus a
technical loss that grows with load (about 3–5 % of supply) and a little
measurement noise, so the energy a meter fails to report shows up as loss,
as it does in the field. ``day_view`` packs a day into the pipeline's
``DayView`` so detectors see exactly what the pipeline gives them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from services.detector.archive import AreaArchive
from services.detector.day import DayView
from services.detector.eventtime import DAY_S
from services.detector.findings import Finding
from services.detector.frame import MeterEvent
from services.detector.state import Arrays
from services.detector.thresholds import Thresholds, load_thresholds
from tests.unit.detector_frames import T0, make_archive, meter

__all__ = ["SyntheticArea", "day_view", "DAY0"]

IPD = 96
DAY0 = T0 // DAY_S  # epoch day of the first synthetic day (a Monday)


def _bump(hours: np.ndarray, at: np.ndarray, width: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * ((hours[None, :] - at[:, None]) / width[:, None]) ** 2)


@dataclass
class SyntheticArea:
    """``n`` residential meters and an area meter; ``true(d)`` and ``area(d, consumed)`` per day index ``d``."""

    n: int = 40
    seed: int = 7
    archive: AreaArchive = field(init=False)
    level: np.ndarray = field(init=False)
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.archive = make_archive([meter(f"M{i + 1}") for i in range(self.n)])
        r = self.rng
        self.level = 10.0 * np.exp(r.normal(0.0, 0.4, self.n))
        hours = (np.arange(IPD) + 0.5) * 24 / IPD
        n = self.n

        def shape(morning: float, evening: float) -> np.ndarray:
            s = (
                0.25
                + r.uniform(0.6, 1.2, n)[:, None] * _bump(hours, r.normal(morning, 0.7, n), r.uniform(0.8, 1.5, n))
                + r.uniform(1.2, 2.2, n)[:, None] * _bump(hours, r.normal(evening, 1.0, n), r.uniform(1.2, 2.2, n))
            )
            return s / s.sum(axis=1, keepdims=True)

        self.weekday_shape = shape(7.5, 19.5)
        self.weekend_shape = shape(10.0, 18.5)

    @property
    def ids(self) -> tuple[str, ...]:
        return self.archive.meter_ids

    def true(self, d: int) -> np.ndarray:
        """[n, 96] kWh each meter really consumes on day ``d`` (0 = Monday)."""
        r = self.rng
        weekend = d % 7 >= 5
        shape = self.weekend_shape if weekend else self.weekday_shape
        day_factor = np.exp(r.normal(0.0, 0.12, self.n)) * (1.1 if weekend else 1.0)
        noise = np.exp(r.normal(0.0, 0.3, (self.n, IPD)) - 0.045)
        return (self.level * day_factor)[:, None] * shape * noise

    def area(self, consumed: np.ndarray, extra: np.ndarray | float = 0.0) -> np.ndarray:
        """[96] the area meter: true consumption (+ ``extra`` unmetered load) plus technical loss."""
        load = consumed.sum(axis=0) + extra
        x = load / load.mean()
        rate = 0.022 + 0.018 * x  # technical loss grows with load: ~4 % of a day's supply
        return load * (1.0 + rate) * np.exp(self.rng.normal(0.0, 0.005, IPD))


def day_view(
    archive: AreaArchive,
    d: int,
    reported: np.ndarray,
    area: np.ndarray | None,
    *,
    events: Sequence[tuple[str, str]] = (),
    mean_pf: np.ndarray | None = None,
    phase_current_a: np.ndarray | None = None,
    instantaneous: np.ndarray | None = None,
) -> DayView:
    """Day ``d`` (index from ``DAY0``) as the pipeline would close it; NaN = no energy for that interval.

    ``instantaneous``: [n, ipd] the energy each interval's V·I·pf implies (None: no instantaneous values).
    """
    n = len(reported)
    start = (DAY0 + d) * DAY_S
    reported = np.asarray(reported, np.float32)
    instantaneous = np.full(reported.shape, np.nan) if instantaneous is None else np.asarray(instantaneous, np.float64)
    both = ~np.isnan(reported) & ~np.isnan(instantaneous)
    known = (~np.isnan(reported)).sum(axis=1).astype(np.int32)
    area_arr = np.full(reported.shape[1], np.nan, np.float32) if area is None else np.asarray(area, np.float32)
    area_known = int((~np.isnan(area_arr)).sum())
    return DayView(
        area_id=archive.area_id,
        day_start=start,
        interval_minutes=1440 // reported.shape[1],
        complete=True,
        meter_ids=archive.meter_ids,
        energy=reported,
        daily_kwh=np.where(known > 0, np.nansum(reported, axis=1, dtype=np.float64), np.nan),
        reported=known,
        energy_intervals=known,
        max_demand_kw=np.full(n, np.nan, np.float32),
        mean_pf=np.full(n, np.nan, np.float32) if mean_pf is None else np.asarray(mean_pf, np.float32),
        phase_current_a=np.full((n, 3), np.nan, np.float32) if phase_current_a is None else np.asarray(phase_current_a, np.float32),
        power_kwh=np.nansum(np.where(both, instantaneous, 0.0), axis=1).astype(np.float32),
        power_energy_kwh=np.nansum(np.where(both, reported, 0.0), axis=1).astype(np.float32),
        area_energy=area_arr,
        area_daily_kwh=float(np.nansum(area_arr)) if area_known else float("nan"),
        area_energy_intervals=area_known,
        events=tuple(MeterEvent(m, code, start + 3600) for m, code in events),
    )


Edit = Callable[[int, np.ndarray], np.ndarray]  # (day index, true [n, 96]) -> reported [n, 96]


def run_days(
    detector: object,
    area: SyntheticArea,
    days: int,
    report: Edit | None = None,
    *,
    consume: Edit | None = None,
    extra: Callable[[int], np.ndarray | float] | None = None,
    events: Callable[[int], Sequence[tuple[str, str]]] | None = None,
    instantaneous: Edit | None = None,
    th: Thresholds | None = None,
    state: Arrays | None = None,
) -> tuple[list[list[Finding]], Arrays]:
    """Run ``detector.on_day`` over ``days`` synthetic days; findings per day and the final state.

    ``consume`` changes what meters really use (the area meter sees it),
    ``report`` only what they report (the area meter sees the truth);
    ``instantaneous`` maps what they use to the energy their V·I·pf implies
    (None: the meters send no instantaneous values).
    """
    th = (th or load_thresholds()).for_area(area.archive.area_id)
    state = detector.init_state(area.n) if state is None else state  # type: ignore[attr-defined]
    out = []
    for d in range(days):
        true = area.true(d)
        if consume is not None:
            true = consume(d, true)
        reported = true if report is None else report(d, true.copy())
        meter_area = area.area(true, 0.0 if extra is None else extra(d))
        inst = None if instantaneous is None else instantaneous(d, true.copy())
        view = day_view(area.archive, d, reported, meter_area, events=() if events is None else events(d), instantaneous=inst)
        out.append(detector.on_day(view, area.archive, state, th))  # type: ignore[attr-defined]
    return out, state
