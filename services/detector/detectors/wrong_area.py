"""wrong_area (户变关系错误 / 跨台区): the archive puts a meter in an area that does not feed it.

Two signals (shared/domain.md), from two vantage points:

1. **Negative loss** (inside the area, :class:`WrongAreaBalance`, a rule of
   the consumption family). A meter billed in area A but fed by area B
   adds its consumption to A's "consumed" and nothing to A's "supplied":
   A shows negative loss by exactly that meter's energy, day after day:
   when the meter uses more than its usual, A's loss drops by as much. So
   its daily deviation from its own baseline (the family's deficit
   series, which removes the weekly rhythm every household shares) moves
   with A's excess loss (Pearson r ≥ ``negative_min_r``, the r of the
   family's attribution), and taking it out of today's balance brings the
   rate back inside [negative limit, high limit]. It fires on a
   negative-loss day when both hold and the window held at least
   ``negative_min_days`` negative days. Stateless (the family's history
   and loss series).

2. **Voltage profile** (across areas, :class:`WrongAreaVoltage`). A meter's
   voltage follows the transformer that feeds it: its daily profile
   correlates with that area's meters better than with its own. This
   needs other areas' data, which an area-partitioned stream does not
   have, so each area *publishes* a small daily summary
   (:class:`AreaVoltageDay`: the median over its meters of their hourly
   per-unit voltage deviation, 24 numbers) and *reads* its peers' through
   a :class:`VoltageDirectory`. The registry's instance has none (it learns
   and judges nothing); :func:`with_voltage_directory` gives the pipeline
   one. The Faust app: the global table ``area_voltage`` (area id → its
   last two ``AreaVoltageDay.to_record()`` as JSON) through
   :class:`MappingVoltageDirectory`, which every worker reads whole;
   ``evaluate --workers N``: the same over a dict its worker processes
   share; the offline runner and backtests: :class:`InMemoryVoltageDirectory`.
   Every other area is a peer; a large fleet would restrict ``peers`` to
   plausible neighbours (same substation/feeder), which the archive does
   not say yet. A meter fires when, on ``min_days``
   days in a row, the same peer area's profile correlates with its own
   profile at least ``min_corr_margin`` better than its own area's does
   (profiles taken relative to the mean of the areas compared: the daily
   sag every transformer shares would otherwise make every r ≈ 1).
   Peers are compared on the same day only, and a day is judged one day
   late: when an area closes day d it publishes d and judges d − 1, which
   every area has closed by then (areas close a day within minutes of one
   another, when their next day's first frame arrives), so the result does
   not depend on the order areas close their days.

State per meter of :class:`WrongAreaVoltage` (53 B): ``volt_pu`` int8[24]
the open day's hourly mean per-unit voltage deviation in steps of
:data:`PU_STEP` (24 B), ``volt_prev`` the same of the last closed day,
judged when the next one closes (24 B), ``wa_days`` uint8 the run of days,
``wa_peer`` uint32 CRC-32 of the run's peer area id. A step of 0.1 %
(0.22 V at 220 V) is a tenth of the hour-to-hour fluctuation the rule
correlates (about 0.6 % on the simulator's busbars), and ±12.7 % covers
the statutory supply range (GB/T 12325: +7 % / −10 % at 220 V); an hour
beyond it (a lost phase) is held at the bound.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import orjson

from services.detector.archive import AreaArchive
from services.detector.day import DayView
from services.detector.detectors.base import Detector
from services.detector.detectors.consumption import HOURS, DailyRule, DayContext, loss_limits
from services.detector.eventtime import DAY_S, format_ts
from services.detector.findings import Finding, exceed_score, plain
from services.detector.interval import IntervalView
from services.detector.state import Arrays
from services.detector.stats.correlation import pearson
from services.detector.thresholds import Thresholds

__all__ = [
    "PU_STEP",
    "AreaVoltageDay",
    "InMemoryVoltageDirectory",
    "MappingVoltageDirectory",
    "NegativeLossSuspects",
    "VoltageDirectory",
    "WrongAreaBalance",
    "WrongAreaVoltage",
    "decode_pu",
    "encode_pu",
    "negative_loss_suspects",
    "voltage_matches",
    "with_voltage_directory",
]

_TYPE = "wrong_area"

PU_STEP = 0.001
"""Per-unit voltage deviation per step of the int8 hourly profiles; -128 stands for an hour without readings."""
_PU_NONE = -128


# -- 1. negative loss --------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class NegativeLossSuspects:
    """Which meters a negative-loss area does not supply (arrays aligned with the meters)."""

    r: np.ndarray  # Pearson r of the meter's deficit series with the area's excess loss (trailing days)
    without: np.ndarray  # today's loss rate with the meter taken out of the balance
    negative_days: int  # negative-loss days in the trailing window
    hit: np.ndarray  # bool: all conditions hold


def negative_loss_suspects(ctx: DayContext, th: Thresholds) -> NegativeLossSuspects:
    """The negative-loss signal for every meter of the area at once."""
    b, limits = ctx.balance, loss_limits(ctx.archive, th)
    r = ctx.attribution.r
    with np.errstate(invalid="ignore", divide="ignore"):
        without = (b.supplied_kwh - (b.consumed_kwh - ctx.kwh)) / b.supplied_kwh
    negative_days = int(np.count_nonzero(ctx.loss_rates < limits.negative))
    hit = (
        (b.status == "negative")
        & (negative_days >= th.count(_TYPE, "negative_min_days"))
        & (r >= th.num(_TYPE, "negative_min_r"))
        & (without >= limits.negative)
        & (without <= limits.high)
    )
    return NegativeLossSuspects(r=r, without=without, negative_days=negative_days, hit=hit)


class WrongAreaBalance(DailyRule):
    """A meter whose consumption is the area's negative loss."""

    name: ClassVar[str] = _TYPE

    def on_day(self, ctx: DayContext, state: Arrays, th: Thresholds) -> list[Finding]:
        if ctx.balance.status != "negative":
            return []
        s = negative_loss_suspects(ctx, th)
        return [
            Finding.of(
                th,
                _TYPE,
                ctx.archive.meter_ids[i],
                ctx.day.area_id,
                ctx.day.end,
                float(s.r[i]),
                {
                    "signal": "negative_loss",
                    "area_loss_pct": plain(100.0 * ctx.balance.loss_rate, 2),
                    "area_loss_pct_without_meter": plain(100.0 * s.without[i], 2),
                    "observed_kwh_day": plain(ctx.kwh[i], 3),
                    "r": plain(s.r[i], 3),
                    "negative_days": s.negative_days,
                },
            )
            for i in np.flatnonzero(s.hit)
        ]


# -- 2. voltage profiles across areas ------------------------------------------------


def encode_pu(pu: np.ndarray) -> np.ndarray:
    """Per-unit deviations (no NaN) as int8 steps of :data:`PU_STEP`, held at ±127 steps.

    >>> encode_pu(np.array([0.0, 0.0234, -0.0006, 0.5, -1.0])).tolist()
    [0, 23, -1, 127, -127]
    """
    return np.clip(np.rint(pu / PU_STEP), -127, 127).astype(np.int8)


def decode_pu(steps: np.ndarray) -> np.ndarray:
    """float64 per-unit deviations of int8 steps, NaN for an hour without readings.

    >>> decode_pu(np.array([0, 23, -128], np.int8)).tolist()
    [0.0, 0.023, nan]
    """
    return np.where(steps == _PU_NONE, np.nan, steps.astype(np.float64) * PU_STEP)


def _summary(profiles: np.ndarray) -> np.ndarray | None:
    """The area's profile: the median over its meters with at least half a day of hours (None: nobody)."""
    enough = np.count_nonzero(~np.isnan(profiles), axis=1) >= HOURS // 2
    if not enough.any():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an hour nobody reported stays NaN
        return np.nanmedian(profiles[enough], axis=0)


@dataclass(frozen=True, slots=True, eq=False)
class AreaVoltageDay:
    """What one area publishes each day: its meters' median hourly per-unit voltage deviation."""

    area_id: str
    day_no: int  # epoch day
    profile: np.ndarray  # float64 [24], NaN for hours without readings

    def to_record(self) -> dict[str, Any]:
        """Plain JSON for a topic or a global table."""
        return {"area_id": self.area_id, "day_no": self.day_no, "profile": [plain(v, 6) for v in self.profile]}

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> AreaVoltageDay:
        profile = np.array([np.nan if v is None else v for v in rec["profile"]], dtype=np.float64)
        return cls(str(rec["area_id"]), int(rec["day_no"]), profile)


class VoltageDirectory(Protocol):
    """Where areas publish their daily voltage summary and read their peers'."""

    def publish(self, summary: AreaVoltageDay) -> None:
        """Record an area's summary of one day."""
        ...

    def peers(self, area_id: str, day_no: int) -> Sequence[AreaVoltageDay]:
        """Summaries of that day from the areas ``area_id`` could be fed by (never itself)."""
        ...


class InMemoryVoltageDirectory:
    """A directory in one process (backtests, tests): every other area is a peer; two days kept per area."""

    __slots__ = ("_days",)

    def __init__(self) -> None:
        self._days: dict[str, dict[int, AreaVoltageDay]] = {}

    def publish(self, summary: AreaVoltageDay) -> None:
        days = self._days.setdefault(summary.area_id, {})
        days[summary.day_no] = summary
        for old in sorted(days)[:-2]:
            del days[old]

    def peers(self, area_id: str, day_no: int) -> list[AreaVoltageDay]:
        return [d[day_no] for a, d in sorted(self._days.items()) if a != area_id and day_no in d]


class MappingVoltageDirectory:
    """A directory over a bytes → bytes mapping (the Faust app's global table): area id → its last days as JSON.

    Each area's value is a JSON list of its ``keep_days`` latest
    :meth:`AreaVoltageDay.to_record` (a few hundred bytes). Every other
    area in the mapping is a peer. Decoded values are cached by their bytes,
    so a day's comparisons decode each peer once.
    """

    __slots__ = ("_table", "_keep", "_decoded")

    def __init__(self, table: MutableMapping[bytes, bytes], keep_days: int = 2) -> None:
        self._table = table
        self._keep = keep_days
        self._decoded: dict[bytes, tuple[bytes, list[AreaVoltageDay]]] = {}

    def _days(self, key: bytes, raw: bytes | None) -> list[AreaVoltageDay]:
        if raw is None:
            return []
        hit = self._decoded.get(key)
        if hit is not None and hit[0] == raw:
            return hit[1]
        days = [AreaVoltageDay.from_record(rec) for rec in orjson.loads(raw)]
        self._decoded[key] = (raw, days)
        return days

    def publish(self, summary: AreaVoltageDay) -> None:
        key = summary.area_id.encode()
        days = [d for d in self._days(key, self._table.get(key)) if d.day_no != summary.day_no] + [summary]
        days.sort(key=lambda d: d.day_no)
        self._table[key] = orjson.dumps([d.to_record() for d in days[-self._keep :]])

    def peers(self, area_id: str, day_no: int) -> list[AreaVoltageDay]:
        own = area_id.encode()
        items: Iterable[tuple[bytes, bytes]] = self._table.items()
        return [
            d
            for key, raw in sorted(items)
            if key != own
            for d in self._days(key, raw)
            if d.day_no == day_no
        ]


def with_voltage_directory(detectors: Sequence[Detector], directory: VoltageDirectory) -> tuple[Detector, ...]:
    """``detectors`` (the registry's) with the voltage rule reading and publishing through ``directory``.

    The registry's :class:`WrongAreaVoltage` has no directory (it learns
    profiles but judges nothing); whoever runs the pipeline over many areas
    (the offline runner, the Faust app) supplies one.
    """
    return tuple(WrongAreaVoltage(directory) if isinstance(d, WrongAreaVoltage) else d for d in detectors)


def voltage_matches(
    profiles: np.ndarray, own: np.ndarray, peers: Sequence[AreaVoltageDay]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per meter: r with its own area's profile, the best r among peers, and that peer's index (-1 none).

    Every transformer's voltage sags in the evening because everyone cooks
    then: raw profiles of all areas correlate near 1 and cannot tell areas
    apart. So the mean profile of the areas compared (own and peers) is
    removed from every profile first, and what is correlated is each
    area's own departure from it. One broadcast correlation of [n, 1, 24]
    against [1, m, 24].

    >>> import numpy as np
    >>> t = np.arange(24.0)
    >>> common = 5 * np.sin(t / 24 * 2 * np.pi)                  # the evening sag everyone shares
    >>> a, b, c = common + np.sin(t / 4), common + np.cos(t / 3), common + np.sin(t / 2)
    >>> meters = np.stack([a, b])        # archived in area A; the second follows area B
    >>> own_r, best_r, best = voltage_matches(meters, a, [AreaVoltageDay("B", 0, b), AreaVoltageDay("C", 0, c)])
    >>> own_r.round(2), best_r.round(2), best
    (array([ 1.  , -0.82]), array([-0.54,  1.  ]), array([1, 0]))
    """
    if not peers:
        return pearson(profiles, own, min_pairs=HOURS // 2), np.full(len(profiles), np.nan), np.full(len(profiles), -1)
    table = np.stack([p.profile for p in peers])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an hour no area reported
        common = np.nanmean(np.vstack([own, table]), axis=0)
    profiles, own, table = profiles - common, own - common, table - common
    own_r = pearson(profiles, own, min_pairs=HOURS // 2)
    r = pearson(profiles[:, None, :], table[None, :, :], min_pairs=HOURS // 2)
    filled = np.nan_to_num(r, nan=-np.inf)
    best = filled.argmax(axis=1)
    best_r = r[np.arange(len(profiles)), best]
    return own_r, best_r, np.where(np.isnan(best_r), -1, best)


class WrongAreaVoltage(Detector):
    """Compares each meter's daily voltage profile with its own area's and its peers'."""

    name: ClassVar[str] = _TYPE
    __slots__ = ("directory",)

    def __init__(self, directory: VoltageDirectory | None = None) -> None:
        self.directory = directory

    def init_state(self, n_meters: int) -> Arrays:
        return {
            "volt_pu": np.full((n_meters, HOURS), _PU_NONE, np.int8),
            "volt_prev": np.full((n_meters, HOURS), _PU_NONE, np.int8),
            "wa_days": np.zeros(n_meters, np.uint8),
            "wa_peer": np.zeros(n_meters, np.uint32),
        }

    def on_frame(self, view: IntervalView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        """Fold the frame's voltages into the open day's hourly means (in order; late frames skipped)."""
        if view.late or view.frame.interval_s > 3600:
            return []
        idx = view.idx
        with np.errstate(invalid="ignore", divide="ignore"):
            volts = view.frame.voltage
            known = np.count_nonzero(~np.isnan(volts), axis=1)
            v = np.where(known > 0, np.nansum(volts, axis=1) / known, np.nan)
            pu = v / archive.nominal_voltage_v[idx] - 1.0
        into_day = (view.ts - 1) % DAY_S
        hour, within = into_day // 3600, (into_day % 3600) // view.frame.interval_s
        cells = decode_pu(state["volt_pu"][idx, hour])
        ok = ~np.isnan(pu)
        mean = np.where(np.isnan(cells), pu, cells + (pu - cells) / (within + 1))
        state["volt_pu"][idx[ok], hour] = encode_pu(mean[ok])
        return []

    def on_day(self, day: DayView, archive: AreaArchive, state: Arrays, th: Thresholds) -> list[Finding]:
        """Publish the day just closed; judge the day before, which every peer has published by now."""
        judged = decode_pu(state["volt_prev"])
        state["volt_prev"][:] = state["volt_pu"]
        state["volt_pu"][:] = _PU_NONE
        if self.directory is None:
            return []
        day_no = day.day_start // DAY_S
        today = _summary(decode_pu(state["volt_prev"]))
        if today is not None:
            self.directory.publish(AreaVoltageDay(day.area_id, day_no, today))
        own = _summary(judged)
        peers = list(self.directory.peers(day.area_id, day_no - 1))
        if own is None or not peers:
            return []
        enough = np.count_nonzero(~np.isnan(judged), axis=1) >= HOURS // 2
        own_r, best_r, best = voltage_matches(judged, own, peers)
        margin = th.num(_TYPE, "min_corr_margin")
        better = enough & (best >= 0) & (best_r - own_r >= margin)
        # The run's peer is remembered as a CRC-32 of its id; best = -1 (no peer) picks the trailing 0.
        crc = np.array([zlib.crc32(p.area_id.encode()) for p in peers] + [0], dtype=np.uint32)[best]
        days, peer = state["wa_days"], state["wa_peer"]
        same = better & (peer == crc) & (days > 0)
        days[:] = np.where(better, np.where(same, np.minimum(days.astype(np.int16) + 1, 255), 1), 0)
        peer[:] = np.where(better, crc, 0)
        min_days = th.count(_TYPE, "min_days")
        return [
            Finding.of(
                th,
                _TYPE,
                archive.meter_ids[i],
                day.area_id,
                day.end,
                exceed_score(best_r[i] - own_r[i], margin),
                {
                    "signal": "voltage_profile",
                    "day": format_ts(day.day_start - DAY_S)[:10],
                    "own_area_r": plain(own_r[i], 3),
                    "other_area_id": peers[best[i]].area_id,
                    "other_area_r": plain(best_r[i], 3),
                    "days": int(days[i]),
                },
            )
            for i in np.flatnonzero(better & (days >= min_days))
        ]
