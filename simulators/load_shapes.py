"""What customers consume: per-class daily shapes, weekday/weekend, season, weather, noise, and rooftop PV.

Shapes are parametric (sums of circular Gaussians and plateaus) with
per-meter jitter, so no two households peak at the same minute but each
household repeats itself from week to week: the baseline a detector
learns is real. A day's load for an area is one numpy expression over
(meters × intervals):

    load = level × shape[weekday|weekend] × season(class, day) × weather(area, day)
           × day_factor(meter, day) × interval_noise

with lognormal factors of mean 1, so ``level_kw`` stays each meter's mean
demand. Loads are capped below the contracted capacity: exceeding it is
an anomaly (over_capacity), never background.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from simulators.fleet import AGRICULTURAL, COMMERCIAL, INDUSTRIAL, RESIDENTIAL, AreaFleet

__all__ = ["LoadModel", "NORMAL_CAPACITY_SHARE"]

NORMAL_CAPACITY_SHARE = 0.75
"""Background demand never exceeds this share of contracted kVA × power factor."""

# Per-interval and per-day lognormal spread, by class (residential is spiky, industry steady).
_INTERVAL_SIGMA = np.array([0.35, 0.12, 0.10, 0.20])
_DAY_SIGMA = np.array([0.12, 0.06, 0.06, 0.15])


def _bump(hours: np.ndarray, centre: np.ndarray, width: np.ndarray | float) -> np.ndarray:
    """Circular Gaussian bump over the day: (M, P) for centres of shape (M, 1)."""
    d = (hours[None, :] - centre + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (d / width) ** 2)


def _plateau(hours: np.ndarray, start: np.ndarray, end: np.ndarray, edge: float = 0.4) -> np.ndarray:
    """Smooth on/off window from ``start`` to ``end`` hours, (M, P)."""
    rise = 1.0 / (1.0 + np.exp(-(hours[None, :] - start) / edge))
    fall = 1.0 / (1.0 + np.exp(-(end - hours[None, :]) / edge))
    return rise * fall


def _normalise(shape: np.ndarray) -> np.ndarray:
    return shape / shape.mean(axis=1, keepdims=True)


def _class_shapes(code: int, n: int, hours: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(weekday, weekend) shapes for ``n`` meters of one class; weekday mean 1, weekend relative to it."""
    col = (n, 1)
    if code == RESIDENTIAL:
        morning = rng.normal(7.3, 0.5, col)
        evening = rng.normal(19.6, 0.6, col)
        a_m, a_e = rng.uniform(0.5, 1.0, col), rng.uniform(1.0, 2.0, col)
        night = rng.uniform(0.25, 0.45, col)
        weekday = night + a_m * _bump(hours, morning, 0.9) + a_e * _bump(hours, evening, 1.8) + 0.2 * _bump(hours, 13.0, 2.5)
        weekend = (
            night + 0.8 * a_m * _bump(hours, morning + 1.7, 1.4) + a_e * _bump(hours, evening, 2.0)
            + 0.6 * _bump(hours, 13.0, 2.5)
        )
        scale = 1.1
    elif code == COMMERCIAL:
        opens, closes = rng.uniform(7.0, 9.5, col), rng.uniform(17.0, 22.0, col)
        base = rng.uniform(0.1, 0.2, col)
        weekday = base + _plateau(hours, opens, closes) * (1.0 + 0.15 * _bump(hours, 14.5, 2.0))
        weekend = weekday
        scale = np.where(rng.random(col) < 0.5, 0.95, 0.3)  # shops stay open, offices close
    elif code == INDUSTRIAL:
        shifts = rng.choice([1, 2, 3], size=col, p=[0.4, 0.4, 0.2])
        start = np.where(shifts == 1, 8.0, 6.0)
        end = np.where(shifts == 1, 17.0, 22.0)
        on = np.where(shifts == 3, 1.0, _plateau(hours, start, end, 0.25))
        weekday = 0.15 + on * (1.0 - 0.25 * _bump(hours, 12.2, 0.4))  # lunch dip
        weekend = weekday
        scale = np.where(shifts == 3, 0.9, rng.uniform(0.3, 0.7, col))
    elif code == AGRICULTURAL:
        first, second = rng.uniform(5.0, 9.0, col), rng.uniform(15.0, 19.0, col)
        weekday = 0.05 + _plateau(hours, first, first + 2.5) + _plateau(hours, second, second + 2.5)
        weekend = weekday
        scale = 1.0
    else:  # pragma: no cover - codes are fixed
        raise ValueError(code)
    weekday = _normalise(weekday)
    return weekday, _normalise(weekend) * scale


def _season(day: date) -> np.ndarray:
    """Multiplicative seasonal factor per class: heating in winter, cooling and irrigation in summer."""
    doy = day.timetuple().tm_yday
    heating = max(0.0, np.cos(2 * np.pi * (doy - 15) / 365.0))
    cooling = max(0.0, np.cos(2 * np.pi * (doy - 205) / 365.0)) ** 2
    return np.array(
        [
            1.0 + 0.35 * heating + 0.45 * cooling,
            1.0 + 0.15 * heating + 0.30 * cooling,
            1.0 + 0.03 * (heating + cooling),
            0.7 + 0.1 * heating + 0.6 * cooling,
        ]
    )


def _solar(hours: np.ndarray) -> np.ndarray:
    """Clear-sky PV output per interval, 1 at solar noon, 0 at night."""
    return np.clip(np.sin(np.pi * (hours - 6.0) / 12.0), 0.0, None) ** 1.3


@dataclass(slots=True, eq=False)
class LoadModel:
    """An area's consumption model: fixed shapes per meter, fresh randomness per day."""

    fleet: AreaFleet
    weekday: np.ndarray  # (M, P)
    weekend: np.ndarray  # (M, P)
    solar: np.ndarray  # (P,)
    cap_kw: np.ndarray  # (M,) background ceiling

    @classmethod
    def build(cls, fleet: AreaFleet, hours: list[float], rng: np.random.Generator) -> LoadModel:
        h = np.asarray(hours)
        n, p = fleet.size, len(h)
        weekday, weekend = np.ones((n, p)), np.ones((n, p))
        for code in (RESIDENTIAL, COMMERCIAL, INDUSTRIAL, AGRICULTURAL):
            sel = np.flatnonzero(fleet.customer_class == code)
            if len(sel):
                weekday[sel], weekend[sel] = _class_shapes(code, len(sel), h, rng)
        cap = NORMAL_CAPACITY_SHARE * fleet.contracted_kva * fleet.base_pf
        return cls(fleet=fleet, weekday=weekday, weekend=weekend, solar=_solar(h), cap_kw=cap)

    def day(self, day: date, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(load kW, PV kW), each (M, P), for one calendar day."""
        f = self.fleet
        n, p = self.weekday.shape
        cls = f.customer_class
        shape = self.weekend if day.weekday() >= 5 else self.weekday
        weather = 1.0 + rng.normal(0.0, 0.04)
        day_sigma = _DAY_SIGMA[cls][:, None]
        day_factor = np.exp(day_sigma * rng.standard_normal((n, 1)) - day_sigma**2 / 2)
        sigma = _INTERVAL_SIGMA[cls][:, None]
        noise = np.exp(sigma * rng.standard_normal((n, p)) - sigma**2 / 2)
        load = f.level_kw[:, None] * shape * _season(day)[cls][:, None] * weather * day_factor * noise
        load = np.minimum(load, self.cap_kw[:, None])
        cloud = rng.uniform(0.3, 1.0)
        pv = f.pv_peak_kw[:, None] * self.solar[None, :] * cloud * rng.uniform(0.9, 1.0, (n, p))
        return load, pv
