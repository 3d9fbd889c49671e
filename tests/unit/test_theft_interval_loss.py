"""The within-day loss test (balance/interval_match.py), its theft signal, and the area's trailing-24 h loss.

A meter that records only part of what it passes (a bypass, a scaled-down
reading) leaves a share of its readings in every interval's loss; an honest
meter, or one whose drop is genuine, does not. The area's loss is also
judged on the hour over the trailing 24 hours, so a thief who starts in
the afternoon raises area_high_loss before the next day closes.
"""

from __future__ import annotations

import numpy as np

from services.detector.balance.interval_match import interval_match
from services.detector.detectors import DETECTORS
from services.detector.detectors.consumption import ConsumptionFamily
from services.detector.eventtime import DAY_S
from services.detector.findings import Finding
from tests.unit.detector_frames import STEP, T0, AreaFeed, make_archive
from tests.unit.synthetic_area import SyntheticArea, run_days

FAMILY = next(d for d in DETECTORS if isinstance(d, ConsumptionFamily))


def _households(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hours = (np.arange(96) + 0.5) / 4.0
    shape = 0.5 + np.exp(-0.5 * ((hours - 19.5) / 2.0) ** 2) + 0.6 * np.exp(-0.5 * ((hours - 7.5) / 1.0) ** 2)
    return 0.08 * shape[None, :] * rng.lognormal(-0.06, 0.35, (n, 96))


def _area(true: np.ndarray, seed: int, tap: float | np.ndarray = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(supplied, technical loss + tap) of one day, loss growing with load and noisy per interval."""
    rng = np.random.default_rng(seed + 1000)
    flow = true.sum(axis=0) + tap
    tech = 0.04 * flow * (0.6 + 0.4 * flow / flow.mean()) * (1.0 + rng.normal(0.0, 0.05, flow.shape))
    return flow + tech, tech + tap


def _match(true: np.ndarray, reported: np.ndarray, seed: int, tap: float | np.ndarray = 0.0):
    supplied, _ = _area(true, seed, tap)
    loss = supplied - reported.sum(axis=0)
    return interval_match(reported, loss, supplied, min_points=40)


def test_a_bypassed_meter_shows_its_share_in_the_loss() -> None:
    true = _households(60, seed=1)
    reported = true.copy()
    reported[7] *= 0.4  # records 40 % of its load: β = 0.6 / 0.4 = 1.5
    m = _match(true, reported, seed=1)
    assert 1.0 < m.beta[7] < 2.0 and m.calibrated_z(20)[7] > 5.0
    honest = np.delete(m.calibrated_z(20), 7)
    assert np.abs(honest).max() < 4.0


def test_honest_meters_in_a_tapped_area_are_not_in_the_loss() -> None:
    true = _households(60, seed=2)
    hours = (np.arange(96) + 0.5) / 4.0
    tap = 0.5 * (0.5 + np.exp(-0.5 * ((hours - 19.5) / 2.0) ** 2))  # an unmetered load with the households' shape
    m = _match(true, true.copy(), seed=2, tap=tap)
    assert np.abs(m.calibrated_z(20)).max() < 4.0


def test_a_reading_an_interval_late_runs_backwards_in_the_loss() -> None:
    true = _households(60, seed=3)
    reported = true.copy()
    reported[4] = np.roll(true[4], 1)  # a clock an interval behind: what it reports is not what was supplied then
    m = _match(true, reported, seed=3)
    assert m.beta[4] < 0.0


def test_the_likelihood_ratio_weighs_the_share_a_theft_of_todays_deficit_would_leave() -> None:
    """A meter recording 40 % of its load leaves β = 1.5: evidence for it; an honest meter's β ≈ 0 is evidence against."""
    true = _households(60, seed=1)
    reported = true.copy()
    reported[7] *= 0.4
    m = _match(true, reported, seed=1)
    lr = m.log_lr(np.full(60, 1.5), 20, 1.5)
    assert lr[7] > 4.0  # a household at 40 % is a strong case on one day
    assert (np.delete(lr, 7) < 0.0).all()  # the honest meters, as if they had dropped to 40 %: all against
    # The same meter judged as if it had dropped only to 90 % (β = 0.11): its far larger share adds at most k · d.
    small = m.log_lr(np.full(60, 0.11), 20, 1.5)
    assert 0.0 < small[7] <= 1.5 * 0.11 / m.se[7]  # d = β / (se · spread) with spread ≥ 1
    assert small[7] < lr[7] / 10


def test_too_few_intervals_are_not_judged() -> None:
    true = _households(30, seed=4)
    supplied, loss = _area(true, seed=4)
    supplied[20:] = np.nan
    m = interval_match(true, loss, supplied, min_points=40)
    assert np.isnan(m.beta).all() and (m.z == 0).all()


# -- theft_suspected's interval_loss signal on a synthetic area ------------------------------------------


def _theft(out: list[list[Finding]], meter_id: str) -> list[Finding]:
    return [f for day in out for f in day if f.type == "theft_suspected" and f.subject_id == meter_id]


def test_a_bypass_thief_gets_the_interval_loss_signal() -> None:
    area = SyntheticArea(n=40, seed=5)

    def bypass(d: int, reported: np.ndarray) -> np.ndarray:
        if d >= 35:
            reported[3] *= 0.4
        return reported

    out, _ = run_days(FAMILY, area, 45, bypass)
    found = _theft(out, area.ids[3])
    assert found and any("interval_loss" in f.evidence["contributions"] for f in found)
    assert found[-1].evidence["interval_loss"]["share_in_loss"] > 0.5


def test_a_genuine_drop_gets_no_interval_loss_signal() -> None:
    area = SyntheticArea(n=40, seed=5)

    def shrink(d: int, true: np.ndarray) -> np.ndarray:
        if d >= 35:
            true[3] *= 0.4  # the household really uses less: the area meter sees it too
        return true

    out, state = run_days(FAMILY, area, 45, consume=shrink)
    assert not _theft(out, area.ids[3])
    assert state["theft_iloss_cusum"][3] < 1.0  # its days are evidence against: no share where a theft's is expected


# -- area_high_loss on the trailing 24 hours -------------------------------------------------------------


def _feed_days(feed: AreaFeed, days: float, loss_from: int | None, n: int, skip: int | None = None) -> None:
    """Frames of ``n`` meters at 0.1 kWh each; the area meter sees 4 % loss, 25 % from interval ``loss_from``."""
    for k in range(1, int(days * 96) + 1):
        if k == skip:
            continue
        lost = 0.25 if loss_from is not None and k >= loss_from else 0.04
        supplied = 0.1 * n / (1.0 - lost)
        feed.push(T0 + k * STEP, energy_kwh=0.1, area_meter={"meter_id": "T1", "energy_kwh": supplied, "register_fwd_kwh": None})


def test_a_loss_that_starts_in_the_afternoon_is_raised_before_the_day_closes() -> None:
    feed = AreaFeed(make_archive(20))
    start = 96 + 60  # day 2, 15:00
    _feed_days(feed, 2.9, loss_from=start, n=20)
    opened = feed.opened("area_high_loss")
    assert opened, "the trailing 24 h crossed 10 % during day 2"
    first = opened[0]
    assert first["evidence"]["window"] == "trailing 24 h"
    # 4 % before and 25 % after: the trailing day crosses 10 % after about 7 hours of the new loss
    from services.detector.eventtime import parse_ts

    at = parse_ts(first["first_seen"])
    assert T0 + start * STEP < at < T0 + 2 * DAY_S


def test_a_compliant_area_is_never_raised_on_the_hour() -> None:
    feed = AreaFeed(make_archive(20))
    _feed_days(feed, 2.5, loss_from=None, n=20)
    assert not feed.opened("area_high_loss")


def test_a_window_with_an_interval_missing_is_not_judged() -> None:
    feed = AreaFeed(make_archive(20))
    _feed_days(feed, 1.45, loss_from=20, n=20, skip=50)  # interval 50 never arrives: every whole day so far holds it
    hourly = [a for a in feed.opened("area_high_loss") if a["evidence"].get("window") == "trailing 24 h"]
    assert not hourly


# -- theft_suspected's roughness signal (h3) ---------------------------------------------------------------


def test_h3_random_factors_make_the_readings_rough_and_a_theft() -> None:
    area = SyntheticArea(n=40, seed=6)
    rng = np.random.default_rng(60)

    def h3(d: int, reported: np.ndarray) -> np.ndarray:
        if d >= 35:
            reported[5] *= rng.uniform(0.1, 0.8, reported.shape[1])
        return reported

    out, _ = run_days(FAMILY, area, 42, h3)
    found = _theft(out, area.ids[5])
    assert found and any("roughness" in f.evidence["contributions"] for f in found)
    assert max(f.evidence.get("roughness_ratio", 0.0) for f in found) > 1.5


def test_a_genuine_drop_keeps_its_roughness() -> None:
    area = SyntheticArea(n=40, seed=6)

    def shrink(d: int, true: np.ndarray) -> np.ndarray:
        if d >= 35:
            true[5] *= 0.45  # the same volume as h3 keeps on average, but the load itself fell
        return true

    out, _ = run_days(FAMILY, area, 42, consume=shrink)
    assert not _theft(out, area.ids[5])


def test_rough_readings_without_a_real_drop_are_no_theft() -> None:
    """The same jumps as h3, but the volume kept within 8 % of usual: not a low day, so roughness does not count."""
    area = SyntheticArea(n=40, seed=6)
    rng = np.random.default_rng(60)

    def jumpy(d: int, reported: np.ndarray) -> np.ndarray:
        if d >= 35:
            reported[5] *= rng.uniform(0.1, 0.8, reported.shape[1]) / 0.45 * 0.92
        return reported

    out, _ = run_days(FAMILY, area, 42, jumpy)
    assert not _theft(out, area.ids[5])


def test_a_gap_in_another_meters_readings_lends_its_jump_to_no_one() -> None:
    """The balance fills a missing reading at the meter's mean: the loss of that interval holds what it really used."""
    true = _households(60, seed=4)
    rng = np.random.default_rng(40)
    gaps = rng.choice(96, 6, replace=False)
    for k, t in enumerate(gaps):
        true[10 + k, t] += 0.6  # a kettle in the interval this meter's reading goes missing...
        true[3, t] += 0.25  # ...while meter 3, honest, happens to boil one too
    reported = true.copy()
    for k, t in enumerate(gaps):
        reported[10 + k, t] = np.nan
    supplied, _ = _area(true, seed=4)
    filled = np.where(np.isnan(reported), np.nanmean(reported, axis=1, keepdims=True), reported)
    loss = supplied - filled.sum(axis=0)  # as the balance computes it
    m = interval_match(reported, loss, supplied, min_points=40)
    assert m.points <= 95 - 6
    assert abs(m.calibrated_z(20)[3]) < 3.0
