"""Instantaneous values consistent with the energy: phase voltages, currents, power factor, demand.

Voltage is built from the *feeding* transformer: its busbar voltage (tap
setting, per-phase offset, sag under the area's load, and a slow
fluctuation shared by every meter it feeds) minus each meter's own drop
along the feeder. The shared fluctuation is what lets a detector find a
meter archived in the wrong area: its voltage tracks the other
transformer. Currents follow from power, voltage and power factor
(I = P / (V × pf) per phase), divided by the CT ratio for CT meters,
which display secondary amperes. The power is the one at the instant the
meter samples its current (a 96-point curve holds samples, not interval
means): the interval's mean power times a lognormal factor of mean 1,
wider for a household, whose load cycles within minutes (kettles,
compressors), than for a business.
"""

from __future__ import annotations

import numpy as np

from simulators.fleet import NOMINAL_VOLTAGE_V, RESIDENTIAL, AreaFleet

__all__ = ["busbar_voltage", "meter_voltage", "sampled_power", "phase_currents", "power_factor", "demand_kw"]

SAMPLE_SIGMA_HOUSEHOLD, SAMPLE_SIGMA_OTHER = 0.3, 0.15
"""σ of the log of a current sample against the interval's mean power: residential customers, everyone else."""


def busbar_voltage(fleet: AreaFleet, load_ratio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-phase voltage at the transformer's low-voltage side, (P, 3).

    ``load_ratio`` is the area's load relative to its daily peak (0–1);
    the fluctuation is an AR(1) series so neighbouring intervals agree.
    """
    p = len(load_ratio)
    shocks = rng.normal(0.0, 0.0035, p)
    wander = np.empty(p)
    level = 0.0
    for k in range(p):  # P ≤ 96: cheaper than a filter call
        level = 0.85 * level + shocks[k]
        wander[k] = level
    ratio = fleet.v_base - fleet.v_sag * load_ratio + wander
    return NOMINAL_VOLTAGE_V * (ratio[:, None] + fleet.phase_offset[None, :])


def meter_voltage(
    fleet: AreaFleet, busbar: np.ndarray, load_ratio: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(M, P, 3) phase voltages, NaN for the phases a single-phase meter lacks.

    ``busbar`` (M, P, 3) and ``load_ratio`` (M, P) are those of the
    transformer that really feeds each meter.
    """
    n, p, _ = busbar.shape
    drop = 1.0 - fleet.feeder_drop[:, None, None] * load_ratio[:, :, None]
    v = busbar * drop * (1.0 + rng.normal(0.0, 0.002, (n, p, 3)))
    single = fleet.phases == 1
    if single.any():
        idx = np.flatnonzero(single)
        v[idx, :, 0] = v[idx, :, :][np.arange(len(idx)), :, fleet.supply_phase[idx]]
        v[idx, :, 1:] = np.nan
    return v


def sampled_power(fleet: AreaFleet, power_kw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(M, P) the power at each interval's current sample: its mean power × a lognormal factor of mean 1."""
    sigma = np.where(fleet.customer_class == RESIDENTIAL, SAMPLE_SIGMA_HOUSEHOLD, SAMPLE_SIGMA_OTHER)[:, None]
    return power_kw * np.exp(sigma * rng.standard_normal(power_kw.shape) - 0.5 * sigma**2)


def phase_currents(
    fleet: AreaFleet, power_kw: np.ndarray, voltage: np.ndarray, pf: np.ndarray
) -> np.ndarray:
    """(M, P, 3) currents as the meter displays them (secondary amperes behind a CT)."""
    share = np.where(fleet.phases[:, None] == 1, np.array([1.0, 0.0, 0.0]), fleet.phase_share)
    v = np.where(np.isnan(voltage), NOMINAL_VOLTAGE_V, voltage)
    amps = power_kw[:, :, None] * 1000.0 * share[:, None, :] / (v * pf[:, :, None])
    amps /= fleet.multiplier[:, None, None]
    amps[np.isnan(voltage)] = np.nan
    return amps


def power_factor(fleet: AreaFleet, points: int, rng: np.random.Generator) -> np.ndarray:
    """(M, P) power factor around each meter's own level."""
    pf = fleet.base_pf[:, None] + rng.normal(0.0, 0.008, (fleet.size, points))
    return np.clip(pf, 0.5, 0.999)


def demand_kw(power_kw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Demand (the interval's peak kW) a little above its mean power."""
    return power_kw * (1.0 + rng.uniform(0.0, 0.12, power_kw.shape))
