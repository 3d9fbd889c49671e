"""Online statistics (services/detector/stats): doctests, and each statistic against a plain reference."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
from scipy import stats as sps

from services.detector.stats import Cusum, DayRing, EWMeanVar, RobustZ, pearson, ramp, spearman

MODULES = [
    "services.detector.stats.ewm",
    "services.detector.stats.ring",
    "services.detector.stats.robust",
    "services.detector.stats.cusum",
    "services.detector.stats.correlation",
    "services.detector.stats.ramp",
    "services.detector.stats.shamos",
    "services.detector.balance.attribution",
    "services.detector.balance.series",
    "services.detector.detectors.wrong_area",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_ewm_matches_the_recursive_definition_per_stream() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(10, 2, (50, 3))
    x[rng.random(x.shape) < 0.2] = np.nan
    ew = EWMeanVar.empty((3,), alpha=0.1, dtype=np.float64)
    for row in x:
        ew.update(row)
    for j in range(3):
        mean = var = None
        for v in x[:, j]:
            if np.isnan(v):
                continue
            if mean is None:
                mean, var = v, 0.0
            else:
                d = v - mean
                mean += 0.1 * d
                var = 0.9 * (var + 0.1 * d * d)
        assert ew.mean[j] == pytest.approx(mean) and ew.var[j] == pytest.approx(var)


def test_ewm_mean_only_and_in_place() -> None:
    mean = np.full(2, np.nan, np.float32)
    EWMeanVar(mean, None, 0.5).update(np.array([4.0, np.nan])).update(np.array([8.0, 2.0]))
    assert mean.tolist() == [6.0, 2.0]
    with pytest.raises(ValueError):
        EWMeanVar(mean, None, 0.0)


def test_ring_blanks_skipped_days_and_ignores_history_it_no_longer_holds() -> None:
    ring = DayRing.empty(n=1, k=7, dtype=np.float64)
    for day in range(10):
        ring.update(np.array([float(day)]), day)
    assert ring.get()[0].tolist() == [3, 4, 5, 6, 7, 8, 9]
    ring.update(np.array([20.0]), 20)  # 10 days later: everything older is gone
    assert np.isnan(ring.get()[0, :-1]).all() and ring.get()[0, -1] == 20
    ring.update(np.array([99.0]), 12)  # older than the ring: ignored
    assert ring.days([12, 20])[0, 1] == 20 and np.isnan(ring.days([12])[0, 0])
    ring.update(np.array([21.0]), 18)  # a late day still inside the ring is written
    assert ring.days([18])[0, 0] == 21


def test_robust_z_ignores_an_outlier_and_needs_history() -> None:
    window = np.array([[10.0, 10.5, 9.5, 10.2, 9.8, 100.0], [1.0, np.nan, np.nan, np.nan, np.nan, np.nan]])
    rz = RobustZ(min_count=3, min_scale=0.01).update(window)
    median, scale = rz.get()
    assert median[0] == pytest.approx(10.1) and scale[0] < 1.0
    assert np.isnan(median[1]) and np.isnan(rz.score(np.array([0.0, 1.0]))[1])
    flat = RobustZ(min_count=3, min_scale=0.5).update(np.full((1, 5), 4.0))
    assert flat.get()[1][0] == 0.5  # a constant history does not make noise infinite


def test_robust_scale_is_consistent_for_normal_data() -> None:
    x = np.random.default_rng(2).normal(0.0, 3.0, (1, 20000))
    assert RobustZ(10, 0.0).update(x).get()[1][0] == pytest.approx(3.0, rel=0.03)


def test_cusum_detects_a_lasting_shift_not_noise() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(0, 1, (200, 100))
    z[150:, :50] += 3.0  # the first 50 streams shift by 3σ at t=150
    cs = Cusum(np.zeros(100), k=1.0)
    peak_before = np.zeros(100)
    for t, row in enumerate(z):
        cs.update(row)
        if t < 150:
            peak_before = np.maximum(peak_before, cs.get())
    assert (cs.get()[:50] > 20).all()
    assert peak_before.max() < 10 and np.median(cs.get()[50:]) < 2


def test_correlations_match_scipy_and_drop_missing_pairs() -> None:
    rng = np.random.default_rng(4)
    a = rng.normal(size=(5, 30))
    b = a[0] * 0.5 + rng.normal(size=30)
    for i in range(5):
        assert pearson(a[i], b) == pytest.approx(sps.pearsonr(a[i], b)[0])
        assert spearman(a[i], b) == pytest.approx(sps.spearmanr(a[i], b)[0])
    a[0, :3] = np.nan
    assert pearson(a[:1], b)[0] == pytest.approx(sps.pearsonr(a[0, 3:], b[3:])[0])
    assert np.isnan(pearson(np.array([1.0, np.nan, 2.0]), np.array([1.0, 2.0, 3.0]), min_pairs=3))


def test_ramp_handles_both_directions_and_nan() -> None:
    assert ramp(np.array([np.nan, 5.0]), 0.0, 10.0).tolist() == [0.0, 0.5]
    assert ramp(0.2, 0.5, 0.1).item() == pytest.approx(0.75)
