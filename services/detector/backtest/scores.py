"""The backtest's per-meter, per-day score table (``--scores OUT.csv``), read from the detector's own state.

One row per archived meter and closed day: ``meter_id, area_id, day``,
``kwh`` (the day's energy as the detector folded it: the sum of its known
intervals, completed from registers where a reading had none),
``intervals`` (how many intervals carried energy), ``baseline_kwh`` (the
meter's usual daily energy the day was judged against) and
``theft_score`` (the meter's smoothed theft score after the day's rules).

Nothing is recomputed here: the values are the arrays the pipeline and
the detectors keep in the area's state (their layout is documented in
``services/detector/pipeline.py`` and ``detectors/consumption.py``;
:data:`STATE_COLUMNS` names them). Before each pipeline call the table
keeps a reference to the open day's profile (the pipeline replaces, never
rewrites, a closed day's buffers) and a copy of the arrays read
``before`` the day's rules; when ``day_start`` has moved afterwards, that
day closed and its rows are written with the arrays read ``after``. A
column whose array a deployment's detectors do not keep is left empty.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

import numpy as np

from services.detector.pipeline import PIPELINE_GROUP
from services.detector.state import AreaState

__all__ = ["COLUMNS", "STATE_COLUMNS", "ScoreTable"]

STATE_COLUMNS: dict[str, tuple[str, str, str]] = {
    "baseline_kwh": ("consumption", "level_kwh", "before"),
    "theft_score": ("consumption", "theft_score", "after"),
}
"""Column → (state group, array, when it is read: ``before`` the day's rules run, or ``after``)."""

_WHEN = {when: [c for c, (_, _, w) in STATE_COLUMNS.items() if w == when] for when in ("before", "after")}
COLUMNS: tuple[str, ...] = ("meter_id", "area_id", "day", "kwh", "intervals", *_WHEN["before"], *_WHEN["after"])


def _cell(value: float) -> str:
    return "" if np.isnan(value) else f"{value:.4g}"


def _arrays(state: AreaState, when: str, copy: bool) -> list[np.ndarray | None]:
    out: list[np.ndarray | None] = []
    for column in _WHEN[when]:
        group, key, _ = STATE_COLUMNS[column]
        values = state.groups.get(group, {}).get(key)
        if values is not None:
            values = np.array(values, dtype=np.float64) if copy else np.asarray(values, dtype=np.float64)
        out.append(values)
    return out


@dataclass(slots=True)
class _Open:
    """An area's open day as it stood before a pipeline call."""

    day_start: int
    interval_minutes: int
    meter_ids: tuple[str, ...]
    profile: np.ndarray | None
    before: list[np.ndarray | None]


class ScoreTable:
    """A :class:`~services.detector.offline.DayObserver` that writes one CSV row per meter and closed day."""

    __slots__ = ("_writer", "_open", "rows")

    def __init__(self, out: IO[str]) -> None:
        self._writer = csv.writer(out, lineterminator="\n")
        self._writer.writerow(COLUMNS)
        self._open: dict[str, _Open] = {}
        self.rows = 0

    def before(self, area_id: str, state: AreaState) -> None:
        core = state.groups.get(PIPELINE_GROUP)
        self._open[area_id] = _Open(
            state.day_start,
            state.interval_minutes,
            state.meter_ids,
            None if core is None else core["profile"],
            _arrays(state, "before", copy=True),
        )

    def after(self, area_id: str, state: AreaState) -> None:
        was = self._open.pop(area_id, None)
        if was is None or was.profile is None or was.day_start < 0 or state.day_start == was.day_start:
            return
        profile = was.profile[:, : 1440 // was.interval_minutes]
        known = (~np.isnan(profile)).sum(axis=1)
        with np.errstate(invalid="ignore"):
            kwh = np.where(known > 0, np.nansum(profile, axis=1, dtype=np.float64), np.nan)
        after = _arrays(state, "after", copy=False)
        now = {m: i for i, m in enumerate(state.meter_ids)}
        day = datetime.fromtimestamp(was.day_start, UTC).date().isoformat()
        for i, meter in enumerate(was.meter_ids):
            j = now.get(meter)
            self._writer.writerow([
                meter, area_id, day, _cell(kwh[i]), str(int(known[i])),
                *("" if a is None else _cell(a[i]) for a in was.before),
                *("" if a is None or j is None else _cell(a[j]) for a in after),
            ])  # fmt: skip
        self.rows += len(was.meter_ids)
