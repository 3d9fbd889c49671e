"""Which customers explain an area's loss: rank meters by how their deficit tracks the loss.

Stolen energy appears twice: the thief's meter reads less (a deficit
against its own baseline) and the area's loss rises by the same energy.
Over the trailing days, the thief's daily deficit therefore *moves with*
the area's excess loss (Pearson r near 1) and *matches it in size*: with
d and ℓ the recent rises of its deficit and of the loss, d ≈ ℓ. A meter
that merely varies has r near 0; a meter that happens to dip while
someone else steals has d far below ℓ; a meter whose use genuinely fell
(a holiday) has a d the loss does not show (ℓ ≈ 0). The score
``max(r, 0) · min(d, ℓ) / max(d, ℓ)`` needs both. ``covered = min(1, ℓ /
d)`` alone says only that the loss rose at least as much as the meter
fell (its missing energy *could* be in the loss). Only rises that stand
out of their own series' noise count (``rise ≥ min_rise_z · σ``, σ from
the MAD of the series' day-to-day differences): a week of noise is not a
rise to explain, nor an explanation. When no meter scores, the loss has no
metered author: an unmetered tap on the line (私拉乱接), so someone must
walk the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from services.detector.stats.correlation import pearson
from services.detector.stats.robust import RobustZ

__all__ = ["Attribution", "NO_METERED_CUSTOMER", "TOO_EARLY", "evidence", "explain", "rise"]

NO_METERED_CUSTOMER = "no metered customer explains it: suspect an unmetered tap on the line, walk the line"
TOO_EARLY = "too few days of high loss to attribute it yet"


@dataclass(frozen=True, slots=True, eq=False)
class Attribution:
    """Per meter, how well its series explains the target series (arrays aligned with the meters)."""

    r: np.ndarray  # Pearson r over the days both are known
    rise_kwh: np.ndarray  # recent rise of the meter's series (kWh/day)
    target_rise_kwh: float  # recent rise of the target (kWh/day)
    score: np.ndarray  # max(r, 0) · min(d, ℓ) / max(d, ℓ), in [0, 1]
    covered: np.ndarray  # min(1, ℓ / d): the loss rose at least as much as the meter fell, in [0, 1]


def rise(series: np.ndarray, recent_days: int) -> np.ndarray:
    """Per row of ``series`` [n, K]: mean of the last ``recent_days`` minus the median of the days before.

    NaN-aware; NaN where either part has no value.

    >>> import numpy as np
    >>> rise(np.array([[10, 11, 10, 10, 16, 17, 16.0]]), recent_days=3).round(2)
    array([6.33])
    """
    s = np.asarray(series, np.float64)
    recent, before = s[:, -recent_days:], s[:, :-recent_days]
    ok = (~np.isnan(recent)).any(axis=1) & (~np.isnan(before)).any(axis=1)
    out = np.full(s.shape[0], np.nan)
    out[ok] = np.nanmean(recent[ok], axis=1) - np.nanmedian(before[ok], axis=1)
    return out


def explain(series: np.ndarray, target: np.ndarray, min_pairs: int, recent_days: int, min_rise_z: float) -> Attribution:
    """Score each row of ``series`` [n, K] (deficits) against ``target`` [K] (excess loss), same days.

    >>> import numpy as np
    >>> loss = np.array([10, 11, 10, 10, 16, 17, 16.0])           # area loss jumps by ~6 kWh/day
    >>> deficits = np.array([[0, 0.5, 0, 0, 6, 6.5, 6],            # the thief: same step, same size
    ...                      [0, 0.1, 0, 0, 0.6, 0.7, 0.6],        # same timing, a tenth of the size
    ...                      [1, -1, 0.5, -0.5, 1, -1, 0.0]])      # noise
    >>> a = explain(deficits, loss, min_pairs=5, recent_days=3, min_rise_z=1.0)
    >>> a.r.round(2), a.rise_kwh.round(2), round(a.target_rise_kwh, 2)
    (array([ 1.  ,  1.  , -0.12]), array([6.17, 0.63, 0.  ]), 6.33)
    >>> a.score.round(2), a.covered.round(2)   # the small one could hide in the loss, but explains little
    (array([0.97, 0.1 , 0.  ]), array([1., 1., 0.]))
    """
    series = np.asarray(series, np.float64)
    target = np.asarray(target, np.float64)[None, :]
    r = pearson(series, target[0], min_pairs)
    d = rise(series, recent_days)
    t = float(rise(target, recent_days)[0])
    both = (d >= min_rise_z * _noise(series)) & (t >= min_rise_z * float(_noise(target)[0])) & (d > 0) & (t > 0)
    r_pos = np.nan_to_num(np.maximum(r, 0.0), nan=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(both, r_pos * np.minimum(d, t) / np.maximum(d, t), 0.0)
        covered = np.where(both, np.minimum(1.0, t / d), 0.0)
    return Attribution(r=r, rise_kwh=d, target_rise_kwh=t, score=score, covered=covered)


def _noise(series: np.ndarray) -> np.ndarray:
    """Robust σ of each row's day-to-day noise: 1.4826 · MAD of consecutive differences / √2.

    From differences, not levels: a lasting step (the very rise being
    tested) adds one large difference, where it would inflate the MAD of
    the levels as soon as it covers a good part of the window.
    """
    return RobustZ(min_count=1, min_scale=0.0).update(np.diff(series, axis=1)).get()[1] / np.sqrt(2.0)


def evidence(att: Attribution, meter_ids: tuple[str, ...], min_score: float, top: int, settled: bool) -> dict[str, Any]:
    """The attribution part of an area alert's evidence: candidates, or the walk-the-line conclusion.

    Candidates score at least ``min_score``, best first;
    ``explained_share`` is their deficit rises over the loss rise, so a
    person sees whether the sizes add up (two thieves share it) or part of
    the loss still has no metered author.
    Without candidates, "walk the line" is concluded only once the loss has
    lasted (``settled``): on its first day a thief's deficit has not risen
    out of its noise yet either.
    """
    order = [int(i) for i in np.argsort(-att.score, kind="stable")[:top] if att.score[i] >= min_score]
    candidates = [
        {
            "meter_id": meter_ids[i],
            "score": round(float(att.score[i]), 3),
            "r": round(float(att.r[i]), 3),
            "deficit_rise_kwh_day": round(float(att.rise_kwh[i]), 3),
        }
        for i in order
    ]
    out: dict[str, Any] = {
        "loss_rise_kwh_day": None if np.isnan(att.target_rise_kwh) else round(att.target_rise_kwh, 3),
        "candidates": candidates,
    }
    if not candidates:
        out["conclusion"] = NO_METERED_CUSTOMER if settled else TOO_EARLY
        return out
    if att.target_rise_kwh > 0:
        out["explained_share"] = round(float(np.sum(att.rise_kwh[order])) / att.target_rise_kwh, 3)
    out["conclusion"] = f"{len(candidates)} metered customer(s) explain the loss; inspect them first"
    return out
