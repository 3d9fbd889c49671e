"""AreaPipeline: one area's frames in, alert records out — the detector's whole per-frame path.

For each frame (event time only, so replay and backtest give the live
service's alerts):

1. Skip a frame already folded in (same interval end and revision): at-least-once
   delivery is harmless.
2. Follow the archive: realign the state to its meter list; a meter whose
   ``installed_at`` changed was replaced, so its register baseline restarts.
3. Close every day the frame has left behind, grace included, and run every
   detector's ``on_day`` on it (see "Days" below).
4. Map frame rows onto archive rows (readings of meters the archive does not
   list are ignored), difference the registers against each meter's previous
   register and complete missing interval energy as register difference ×
   archived multiplier (only across exactly one interval: a gap's lump is
   never booked into one interval), and run every detector's ``on_frame``.
5. Fold the frame into the state: registers move on only for readings newer
   than the meter's previous register; readings of a buffered day fill its
   profile, the first value of an interval is kept, an identical second
   delivery merges silently and a different one is reported as a conflict
   (``duplicate_data``).
6. Findings go to the area's AlertBook; alerts whose quiet period has passed at
   the newest event time resolve.

Days. A day is a UTC day of end-stamped intervals (the 00:00 point closes the
previous day). Frames do not arrive in order: ingest holds an incomplete frame
for its grace period while later complete ones go out, and late uploads come
as corrections. So the open day stays open ``[pipeline] day_close_grace_min``
past midnight; its buffers have that many extra interval columns, which hold
the next day's first intervals and become the start of the next day's buffers
when the open day closes. Per-day aggregates keep two rows, the open day's and
the next day's. A reading of a day already closed no longer changes it. Up to
``[pipeline] max_empty_days`` days without any frame are closed as empty days
(collection outage) before the state jumps ahead. An area's frames share one
interval length; a new length takes effect at the next day close.

Per-meter arrays of the ``"pipeline"`` state group and their cost per meter
(15-minute data, 96 + 8 grace columns): ``reg_fwd``/``reg_rev`` float64 (16 B),
``reg_ts``/``installed_at`` uint32 epoch s, good to 2106 (8 B), ``profile``
float32[104] (416 B),
``seen`` uint8[13] bitmask of intervals with a reading (13 B), ``max_demand``,
``pf_wsum``, ``pf_wen`` float32[2] (24 B), ``i_sum`` float32[2, 3] (24 B),
``i_n`` uint8[2, 3] (6 B), ``power_kwh``/``power_energy`` float32[2] (16 B):
523 B. Times are read as int64 before any arithmetic (a uint32 difference
would wrap). Area-level: the area meter's register, its day series and
bitmask.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from services.detector.archive import AreaArchive
from services.detector.day import DayView
from services.detector.detectors import DETECTORS, Detector
from services.detector.eventtime import DAY_S, day_start_of_interval
from services.detector.findings import Finding
from services.detector.frame import AreaFrame, Conflict, MeterEvent
from services.detector.interval import IntervalView
from services.detector.state import AreaState, Arrays
from services.detector.thresholds import Thresholds

__all__ = ["PIPELINE_GROUP", "AreaPipeline"]

PIPELINE_GROUP = "pipeline"
_REPLACED = "meter_replaced"


def _day_arrays(n: int, width: int) -> Arrays:
    """Empty buffers of a day: ``width`` interval columns (the day's, then the next day's grace)."""
    nbytes = (width + 7) // 8
    return {
        "profile": np.full((n, width), np.nan, dtype=np.float32),
        "seen": np.zeros((n, nbytes), dtype=np.uint8),
        "max_demand": np.full((n, 2), np.nan, dtype=np.float32),  # [:, 0] the day, [:, 1] the next day
        "pf_wsum": np.zeros((n, 2), dtype=np.float32),
        "pf_wen": np.zeros((n, 2), dtype=np.float32),
        "i_sum": np.zeros((n, 2, 3), dtype=np.float32),
        "i_n": np.zeros((n, 2, 3), dtype=np.uint8),
        "power_kwh": np.zeros((n, 2), dtype=np.float32),  # Σ instantaneous energy over intervals with both...
        "power_energy": np.zeros((n, 2), dtype=np.float32),  # ...and Σ energy over the same intervals
        "area_profile": np.full(width, np.nan, dtype=np.float32),
        "area_seen": np.zeros((1, nbytes), dtype=np.uint8),
    }


_DAY_KEYS = tuple(_day_arrays(0, 1))


def _pipeline_arrays(n: int, width: int) -> Arrays:
    return {
        "reg_fwd": np.full(n, np.nan),
        "reg_rev": np.full(n, np.nan),
        "reg_ts": np.zeros(n, dtype=np.uint32),
        "installed_at": np.zeros(n, dtype=np.uint32),
        "area_reg_fwd": np.full(1, np.nan),
        "area_reg_ts": np.zeros(1, dtype=np.int64),
        **_day_arrays(n, width),
    }


def _test_and_set(bits: np.ndarray, rows: np.ndarray, slot: int) -> np.ndarray:
    """Whether interval ``slot`` was already seen for each of ``rows``; marks it seen."""
    byte, mask = slot >> 3, np.uint8(0x80 >> (slot & 7))
    was = (bits[rows, byte] & mask) != 0
    bits[rows, byte] |= mask
    return was


def _carry(old: Arrays, new: Arrays, ipd: int) -> None:
    """Move the next day's grace columns and aggregate rows of ``old`` to the start of ``new``."""
    cols = min(old["profile"].shape[1] - ipd, new["profile"].shape[1])
    if cols <= 0:
        return
    new["profile"][:, :cols] = old["profile"][:, ipd : ipd + cols]
    new["area_profile"][:cols] = old["area_profile"][ipd : ipd + cols]
    for key in ("seen", "area_seen"):
        bits = np.unpackbits(old[key], axis=1)[:, ipd : ipd + cols]
        new[key][:] = np.packbits(np.pad(bits, ((0, 0), (0, new[key].shape[1] * 8 - cols))), axis=1)
    for key in ("max_demand", "pf_wsum", "pf_wen", "i_sum", "i_n", "power_kwh", "power_energy"):
        new[key][:, 0] = old[key][:, 1]


class AreaPipeline:
    """Runs the registered detectors over one area's frames; holds no per-area state itself."""

    __slots__ = ("_detectors", "_th", "_layout")

    def __init__(self, thresholds: Thresholds, detectors: Sequence[Detector] = DETECTORS) -> None:
        self._th = thresholds
        self._detectors = tuple(detectors)
        # Each group's array names and dtypes as this release keeps them (n and widths do not change them).
        groups = {PIPELINE_GROUP: _pipeline_arrays(1, 1), **{d.name: d.init_state(1) for d in self._detectors}}
        self._layout = {name: {key: a.dtype for key, a in arrays.items()} for name, arrays in groups.items()}

    def new_state(self, area_id: str) -> AreaState:
        """An empty state for an area (filled on its first frame)."""
        return AreaState(area_id)

    def process(self, frame: AreaFrame, archive: AreaArchive, state: AreaState) -> list[dict[str, Any]]:
        """Fold one frame into ``state``; return the alert records it causes (open/update/resolve)."""
        if frame.area_id != archive.area_id or frame.area_id != state.area_id:
            raise ValueError(f"frame of {frame.area_id} with archive {archive.area_id} / state {state.area_id}")
        if (frame.ts, frame.revision) in state.recent_frames:
            return []
        th = self._th.for_area(frame.area_id)
        if state.day_start < 0:
            state.day_start = day_start_of_interval(frame.ts)
            state.interval_minutes = frame.interval_minutes
            state.first_ts = frame.ts
        self._follow_archive(archive, state, th)
        findings = self._advance(frame, archive, state, th)
        idx = archive.indices(frame.meter_ids)
        if (idx < 0).any():
            keep = np.flatnonzero(idx >= 0)
            frame, idx = frame.take(keep), idx[keep]
        view = self._view(frame, idx, archive, state)
        for det in self._detectors:
            findings += det.on_frame(view, archive, state.groups[det.name], th)
        self._fold(view, state)
        state.watermark = max(state.watermark, frame.ts)
        state.recent_frames.append((frame.ts, frame.revision))
        return state.alerts.apply(findings, th) + state.alerts.expire(state.watermark, th)

    def flush(self, archive: AreaArchive, state: AreaState) -> list[dict[str, Any]]:
        """Close every buffered day now (end of a backtest or replay); return the records it causes."""
        if state.day_start < 0:
            return []
        th = self._th.for_area(state.area_id)
        self._follow_archive(archive, state, th)
        findings = self._close_day(state.interval_minutes, archive, state, th)
        if state.groups[PIPELINE_GROUP]["seen"].any():  # the next day's first intervals
            findings += self._close_day(state.interval_minutes, archive, state, th)
        return state.alerts.apply(findings, th)

    # -- archive -------------------------------------------------------------

    def _width(self, interval_minutes: int, th: Thresholds) -> int:
        """Buffer columns of a day: its intervals plus the grace columns."""
        return (1440 + int(th.num("pipeline", "day_close_grace_min"))) // interval_minutes

    def _follow_archive(self, archive: AreaArchive, state: AreaState, th: Thresholds) -> None:
        if state.meter_ids != archive.meter_ids or not self._fits(state):
            width = self._width(state.interval_minutes, th)
            fresh = {PIPELINE_GROUP: lambda n: _pipeline_arrays(n, width)}
            fresh.update({d.name: d.init_state for d in self._detectors})
            state.realign(archive.meter_ids, fresh)
        core = state.groups[PIPELINE_GROUP]
        moved = core["installed_at"] != archive.installed_at
        if moved.any():  # a re-installed meter's register restarts from a new, lower value
            core["reg_fwd"][moved] = np.nan
            core["reg_rev"][moved] = np.nan
            core["installed_at"][moved] = archive.installed_at[moved]

    def _fits(self, state: AreaState) -> bool:
        """Whether ``state`` holds exactly the arrays and dtypes this release keeps.

        A record written by another release may not (an array added, or kept
        in another dtype): realigning it gives every such array its initial
        values and keeps the rest (:func:`~services.detector.state.remap_rows`).
        """
        groups = state.groups
        return groups.keys() == self._layout.keys() and all(
            groups[name].keys() == want.keys() and all(groups[name][k].dtype == dt for k, dt in want.items())
            for name, want in self._layout.items()
        )

    # -- days ----------------------------------------------------------------

    def _advance(self, frame: AreaFrame, archive: AreaArchive, state: AreaState, th: Thresholds) -> list[Finding]:
        """Close the days ``frame`` has left behind, grace included; jump over long silences."""
        grace_s = state.groups[PIPELINE_GROUP]["profile"].shape[1] * state.interval_minutes * 60 - DAY_S
        target = day_start_of_interval(frame.ts - grace_s)  # the day whose buffers (with grace) hold the frame
        days = (target - state.day_start) // DAY_S
        findings: list[Finding] = []
        for _ in range(min(days, 1 + th.count("pipeline", "max_empty_days"))):
            findings += self._close_day(frame.interval_minutes, archive, state, th)
        if state.day_start < target:  # a long silence: nothing buffered is left to close
            state.day_start = target
        return findings

    def _close_day(self, next_interval: int, archive: AreaArchive, state: AreaState, th: Thresholds) -> list[Finding]:
        """Run ``on_day`` on the open day; the next day opens with the grace columns carried over."""
        core = state.groups[PIPELINE_GROUP]
        ipd = 1440 // state.interval_minutes
        end = state.day_start + DAY_S
        old = {k: core[k] for k in _DAY_KEYS}
        view = self._day_view(old, ipd, tuple(ev for t, ev in state.events if t <= end), state)
        findings: list[Finding] = []
        for det in self._detectors:
            findings += det.on_day(view, archive, state.groups[det.name], th)
        new = _day_arrays(state.n, self._width(next_interval, th))
        if next_interval == state.interval_minutes:
            _carry(old, new, ipd)
            state.events = [(t, ev) for t, ev in state.events if t > end]
        else:
            state.events = []
        core.update(new)
        state.day_start = end
        state.interval_minutes = next_interval
        state.recent_frames = [f for f in state.recent_frames if f[0] > end - DAY_S]
        return findings

    def _day_view(self, bufs: Arrays, ipd: int, events: tuple[MeterEvent, ...], state: AreaState) -> DayView:
        """A closed day's buffers as a view (the view owns them; the state gets new ones)."""
        profile = bufs["profile"][:, :ipd]
        n_known = (~np.isnan(profile)).sum(axis=1, dtype=np.int32)
        with np.errstate(invalid="ignore", divide="ignore"):
            daily = np.where(n_known > 0, np.nansum(profile, axis=1, dtype=np.float64), np.nan)
            mean_pf = np.where(bufs["pf_wen"][:, 0] > 0, bufs["pf_wsum"][:, 0] / bufs["pf_wen"][:, 0], np.nan)
            i_mean = np.where(bufs["i_n"][:, 0] > 0, bufs["i_sum"][:, 0] / bufs["i_n"][:, 0], np.nan)
        seen = np.unpackbits(bufs["seen"], axis=1)[:, :ipd].astype(bool)
        area = bufs["area_profile"][:ipd]
        area_known = int((~np.isnan(area)).sum())
        start, interval_s = state.day_start, state.interval_minutes * 60
        return DayView(
            area_id=state.area_id,
            day_start=start,
            interval_minutes=state.interval_minutes,
            complete=state.first_ts - interval_s <= start and state.watermark >= start + DAY_S,
            meter_ids=state.meter_ids,
            energy=profile,
            daily_kwh=daily,
            reported=seen.sum(axis=1, dtype=np.int32),
            energy_intervals=n_known,
            max_demand_kw=bufs["max_demand"][:, 0],
            mean_pf=mean_pf.astype(np.float32),
            phase_current_a=i_mean.astype(np.float32),
            power_kwh=bufs["power_kwh"][:, 0],
            power_energy_kwh=bufs["power_energy"][:, 0],
            area_energy=area,
            area_daily_kwh=float(np.nansum(area)) if area_known else float("nan"),
            area_energy_intervals=area_known,
            events=events,
            seen=seen,
        )

    # -- one frame -------------------------------------------------------------

    def _view(self, frame: AreaFrame, idx: np.ndarray, archive: AreaArchive, state: AreaState) -> IntervalView:
        core = state.groups[PIPELINE_GROUP]
        ts, interval_s = frame.ts, frame.interval_s
        mult = archive.multiplier[idx]
        replaced = np.zeros(frame.n, dtype=bool)
        replaced_ids = {e.meter_id for e in frame.events if e.code == _REPLACED}
        if replaced_ids:
            replaced[[m in replaced_ids for m in frame.meter_ids]] = True
        prev_ts = core["reg_ts"][idx].astype(np.int64)
        usable = (prev_ts < ts) & ~replaced
        prev_fwd = np.where(usable, core["reg_fwd"][idx], np.nan)
        prev_rev = np.where(usable, core["reg_rev"][idx], np.nan)
        delta = (frame.register_fwd_kwh - prev_fwd) * mult
        rev_delta = (frame.register_rev_kwh - prev_rev) * mult
        energy = frame.energy_kwh.copy()
        derived = np.isnan(energy) & (delta >= 0) & (ts - prev_ts == interval_s)
        energy[derived] = delta[derived]
        with np.errstate(invalid="ignore"):
            watts = frame.voltage * frame.current * frame.power_factor[:, None]
        known = ~np.isnan(watts)
        instantaneous = np.where(known.any(axis=1), np.where(known, watts, 0.0).sum(axis=1) * mult * interval_s / 3.6e6, np.nan)
        return IntervalView(
            frame=frame,
            idx=idx,
            late=ts <= state.watermark,
            replaced=replaced,
            prev_register_fwd_kwh=prev_fwd,
            prev_register_rev_kwh=prev_rev,
            prev_register_ts=prev_ts,
            register_delta_kwh=delta,
            register_rev_delta_kwh=rev_delta,
            energy_kwh=energy,
            derived=derived,
            instantaneous_kwh=instantaneous,
            conflicts=frame.conflicts + self._redeliveries(frame, idx, energy, state),
            area_energy_kwh=self._area_energy(frame, archive, state),
        )

    def _slot(self, frame: AreaFrame, state: AreaState) -> int:
        """Buffer column of this frame's interval, -1 if no buffered day holds it."""
        if frame.interval_minutes != state.interval_minutes:
            return -1
        slot = (frame.ts - state.day_start) // frame.interval_s - 1
        return slot if 0 <= slot < state.groups[PIPELINE_GROUP]["profile"].shape[1] else -1

    def _redeliveries(
        self, frame: AreaFrame, idx: np.ndarray, energy: np.ndarray, state: AreaState
    ) -> tuple[Conflict, ...]:
        """Readings of a buffered interval delivered again with another energy than the one kept."""
        slot = self._slot(frame, state)
        if slot < 0 or not frame.n:
            return ()
        core = state.groups[PIPELINE_GROUP]
        seen = (core["seen"][idx, slot >> 3] & np.uint8(0x80 >> (slot & 7))) != 0
        kept = core["profile"][idx, slot].astype(np.float64)
        differs = np.flatnonzero(seen & ~np.isnan(kept) & ~np.isnan(energy) & (kept != energy.astype(np.float32)))
        return tuple(Conflict(frame.meter_ids[i], "energy_kwh", float(kept[i]), float(energy[i])) for i in differs)

    def _area_energy(self, frame: AreaFrame, archive: AreaArchive, state: AreaState) -> float:
        am = frame.area_meter
        if am is None:
            return float("nan")
        if not np.isnan(am.energy_kwh):
            return am.energy_kwh
        core = state.groups[PIPELINE_GROUP]
        if frame.ts - int(core["area_reg_ts"][0]) != frame.interval_s:
            return float("nan")
        delta = (am.register_fwd_kwh - float(core["area_reg_fwd"][0])) * archive.area_meter_multiplier
        return delta if delta >= 0 else float("nan")

    def _fold(self, view: IntervalView, state: AreaState) -> None:
        """Move registers on and fill the buffered day with this frame."""
        frame, idx, ts = view.frame, view.idx, view.ts
        core = state.groups[PIPELINE_GROUP]
        newer = core["reg_ts"][idx] < ts
        for col, key in ((frame.register_fwd_kwh, "reg_fwd"), (frame.register_rev_kwh, "reg_rev")):
            ok = newer & ~np.isnan(col)
            core[key][idx[ok]] = col[ok]
        core["reg_ts"][idx[newer & ~np.isnan(frame.register_fwd_kwh)]] = ts
        am = frame.area_meter
        if am is not None and not np.isnan(am.register_fwd_kwh) and core["area_reg_ts"][0] < ts:
            core["area_reg_fwd"][0] = am.register_fwd_kwh
            core["area_reg_ts"][0] = ts
        slot = self._slot(frame, state)
        if slot < 0:
            return
        part = int(slot >= 1440 // state.interval_minutes)  # aggregate row: the open day or the next
        if not np.isnan(view.area_energy_kwh) and not _test_and_set(core["area_seen"], np.zeros(1, np.int64), slot)[0]:
            core["area_profile"][slot] = view.area_energy_kwh
        first = ~_test_and_set(core["seen"], idx, slot)
        rows, energy = idx[first], view.energy_kwh[first]
        known = ~np.isnan(energy)
        core["profile"][rows[known], slot] = energy[known]
        core["max_demand"][rows, part] = np.fmax(core["max_demand"][rows, part], frame.demand_kw[first])
        pf = frame.power_factor[first]
        weighted = known & ~np.isnan(pf)
        core["pf_wsum"][rows[weighted], part] += (pf * energy)[weighted]
        core["pf_wen"][rows[weighted], part] += energy[weighted]
        cur = frame.current[first]
        has = ~np.isnan(cur)
        core["i_sum"][rows, part] += np.where(has, cur, 0.0)
        core["i_n"][rows, part] += has
        instantaneous = view.instantaneous_kwh[first]
        both = known & ~np.isnan(instantaneous)
        core["power_kwh"][rows[both], part] += instantaneous[both]
        core["power_energy"][rows[both], part] += energy[both]
        if frame.events:
            mine = {frame.meter_ids[i] for i in np.flatnonzero(first)}
            state.events.extend((ts, ev) for ev in frame.events if ev.meter_id in mine)
