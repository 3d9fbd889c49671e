"""theft_suspected's power_mismatch signal: the day's energy against what the meter's own V·I·pf implies.

Readings falsified on their way to the head end (h1–h4) lower the energy the
meter reports, not the current it measures; a bypass lowers both, a genuine
drop neither. The instantaneous values here are samples of the load
(lognormal, σ 0.3 per interval, as a real 96-point curve samples a
household), not the interval's mean, so the day's ratio carries noise.
"""

from __future__ import annotations

import numpy as np

from services.detector.detectors import DETECTORS
from services.detector.detectors.consumption import ConsumptionFamily
from services.detector.findings import Finding
from tests.unit.synthetic_area import SyntheticArea, run_days

FAMILY = next(d for d in DETECTORS if isinstance(d, ConsumptionFamily))
START = 35  # first day of the change, after the consumption rules' history


def _sampled(seed: int, bias: float = 1.0):
    """The energy each interval's instantaneous values imply: the load sampled once per interval."""
    rng = np.random.default_rng(seed)
    return lambda d, true: true * bias * rng.lognormal(-0.045, 0.3, true.shape)


def _theft(out: list[list[Finding]], meter_id: str) -> list[tuple[int, Finding]]:
    return [(d, f) for d, day in enumerate(out) for f in day if f.type == "theft_suspected" and f.subject_id == meter_id]


def test_a_reading_scaled_down_on_its_way_falls_short_of_the_meters_own_power_within_two_days() -> None:
    area = SyntheticArea(n=40, seed=7)

    def h1(d: int, reported: np.ndarray) -> np.ndarray:
        if d >= START:
            reported[4] *= 0.8  # h1 at its mildest: every reading × 0.8
        return reported

    out, state = run_days(FAMILY, area, START + 4, h1, instantaneous=_sampled(70))
    found = _theft(out, area.ids[4])
    assert found and found[0][0] <= START + 1
    evidence = found[0][1].evidence
    assert "power_mismatch" in evidence["contributions"]
    assert 0.7 < evidence["power_mismatch"]["ratio"] < 0.9 and 0.95 < evidence["power_mismatch"]["usual_ratio"] < 1.05
    assert not any(f.subject_id != area.ids[4] for day in out for f in day if f.type == "theft_suspected")


def test_honest_meters_whose_power_is_sampled_and_one_whose_channel_reads_high_never_mismatch() -> None:
    area = SyntheticArea(n=40, seed=8)
    sampled = _sampled(80)

    def inst(d: int, true: np.ndarray) -> np.ndarray:
        out = sampled(d, true)
        out[9] *= 1.06  # its CT channel reads 6 % high since installation: the usual ratio learns it
        return out

    out, state = run_days(FAMILY, area, 60, instantaneous=inst)
    assert not any(f.type == "theft_suspected" for day in out for f in day)
    assert 0.9 < state["theft_power_ratio"][9] < 0.97


def test_a_genuine_drop_and_a_bypass_keep_the_ratio() -> None:
    area = SyntheticArea(n=40, seed=9)

    def shrink(d: int, true: np.ndarray) -> np.ndarray:
        if d >= START:
            true[2] *= 0.4  # the household really uses less: its current falls with it
        return true

    out, _ = run_days(FAMILY, area, START + 6, consume=shrink, instantaneous=_sampled(90))
    assert not _theft(out, area.ids[2])

    def bypass(d: int, reported: np.ndarray) -> np.ndarray:
        if d >= START:
            reported[2] *= 0.4  # wired around the meter: its current circuit sees only what it records
        return reported

    def bypassed_power(d: int, true: np.ndarray) -> np.ndarray:
        return bypass(d, true)

    sampled = _sampled(90)
    out, _ = run_days(FAMILY, area, START + 6, bypass, instantaneous=lambda d, true: sampled(d, bypassed_power(d, true)))
    found = _theft(out, area.ids[2])
    assert found and all(f.evidence["contributions"].get("power_mismatch", 0.0) < 0.3 for _, f in found)
