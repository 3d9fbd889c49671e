"""The deterministic generator: per day, every area's true values, then raw messages and their delivery.

``Simulation.days()`` yields the physics of each day (a list of finished
``AreaDay``), which tests inspect directly; ``Simulation.run(sink)``
turns them into the published streams:

1. archives, one record per area, then a barrier (they must land before
   any reading), then every label;
2. for each interval, for each area: the upload (or single readings),
   conflicting re-sends, identical duplicates and malformed messages,
   scheduled into a delivery slot (late and out-of-order uploads wait);
3. each slot is emitted area by area, on-time messages first, then the
   late ones that arrive with it; ``--speed`` paces slots in real time.

Per day and area the stages are: load → genuine-change injectors →
flows → topology (wrong area) → area flows and busbar voltages → meter
voltage/current/pf/demand → measurement injectors → reported energy →
report injectors → delivery injectors and faults → registers and the
area meter. Randomness comes from separate streams (fleet, shapes,
physics, clocks per area; anomalies per area and day; the plans), so
switching an anomaly or a fault on never changes anything else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import orjson

from simulators.anomalies import INJECTORS
from simulators.areaday import AreaDay
from simulators.electrical import busbar_voltage, demand_kw, meter_voltage, phase_currents, power_factor, sampled_power
from simulators.faults import FaultPlan, plan_faults
from simulators.fleet import STREAM_CLOCK, STREAM_PHYSICS, AreaFleet, area_rng, build_fleet
from simulators.labels import build_labels
from simulators.load_shapes import LoadModel
from simulators.malformed import bad_item, bad_message, finish
from simulators.messages import AreaDayMessages
from simulators.plan import Plan, make_plan
from simulators.scenario import Scenario
from simulators.summary import Summary
from simulators.timegrid import TimeGrid

__all__ = ["Simulation", "Sink"]

STREAM_SHAPES, STREAM_ANOMALY, STREAM_SAMPLES = 3, 4, 5
_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


class Sink(Protocol):
    """Where a run's streams go (Kafka, files, both)."""

    wants_csv: bool

    def archive(self, key: str, value: bytes) -> None: ...
    def label(self, key: str, value: bytes) -> None: ...
    def raw(self, key: str, value: bytes) -> None: ...
    def csv(self, text: str) -> None: ...
    def events(self, text: str) -> None: ...  # like csv: called only when wants_csv
    def barrier(self) -> None: ...


@dataclass(slots=True)
class _Out:
    """One raw message waiting for its delivery slot."""

    key: str
    value: bytes
    kind: str
    items: int = 0
    area_items: int = 0
    bad_items: int = 0


@dataclass(slots=True)
class _Batch:
    """What one area sends for one interval, delivered together."""

    area: int
    g: int
    delay: int
    wh: bool = False
    messages: list[_Out] = field(default_factory=list)


class Simulation:
    """A scenario made concrete: fleet, plans and labels up front; data day by day."""

    def __init__(self, scenario: Scenario, per_reading: bool = False, plan: Plan | None = None) -> None:
        """``plan`` replaces the drawn anomaly plan (tests inject exactly what they check)."""
        self.scenario = scenario
        self.per_reading = per_reading
        self.grid = TimeGrid(scenario.start, scenario.days, scenario.interval_minutes)
        self.fleets: list[AreaFleet] = build_fleet(scenario.seed, scenario.areas, scenario.meters_per_area, self.grid)
        hours = self.grid.hours()
        self.loads = [LoadModel.build(f, hours, area_rng(scenario.seed, f.index, STREAM_SHAPES)) for f in self.fleets]
        self.plan: Plan = make_plan(scenario, self.fleets, self.grid) if plan is None else plan
        self.faults: FaultPlan = plan_faults(scenario, self.fleets, self.grid, self.plan, per_reading)
        self.labels = build_labels(self.plan, self.faults, self.fleets, self.grid, per_reading)
        self._injections = [[i for i in self.plan.injections if i.area == a] for a in range(len(self.fleets))]

    # --- physics -----------------------------------------------------------------------------

    def _clock_base(self) -> list[np.ndarray]:
        """Each meter's steady clock offset; a share of meters wander further, still within tolerance."""
        out = []
        for f in self.fleets:
            rng = area_rng(self.scenario.seed, f.index, STREAM_CLOCK)
            base = f.clock_offset_s.copy()
            wander = rng.random(f.size) < self.scenario.faults.clock_noise
            base[wander] = rng.integers(-200, 201, int(wander.sum()))
            out.append(base)
        return out

    def days(self) -> Iterator[list[AreaDay]]:
        """Each day's finished areas, in order (registers carry over from day to day)."""
        s, grid = self.scenario, self.grid
        physics = [area_rng(s.seed, f.index, STREAM_PHYSICS) for f in self.fleets]
        clocks = [area_rng(s.seed, f.index, STREAM_CLOCK + 10) for f in self.fleets]
        clock_base = self._clock_base()
        reg_fwd = [f.register_init.copy() for f in self.fleets]
        reg_rev = [np.zeros(f.size, dtype=np.int64) for f in self.fleets]
        area_reg = [f.area_register_init for f in self.fleets]
        for day in range(grid.days):
            areas = self._physics_day(day, physics, clocks, clock_base)
            for a, ad in enumerate(areas):
                reg_fwd[a], reg_rev[a], area_reg[a] = self._registers(ad, reg_fwd[a], reg_rev[a], area_reg[a])
            yield areas

    def _hooks(self, a: int, ad: AreaDay, stage: str) -> None:
        for inj in self._injections[a]:
            sl = inj.window(ad.g0, ad.points)
            if sl is not None:
                getattr(INJECTORS[inj.key], stage)(ad, inj, sl)

    def _physics_day(
        self, day: int, physics: list[np.random.Generator], clocks: list[np.random.Generator], clock_base: list[np.ndarray]
    ) -> list[AreaDay]:
        s, grid = self.scenario, self.grid
        p, g0 = grid.points_per_day, day * grid.points_per_day
        date = grid.date_of_day(day)
        areas: list[AreaDay] = []
        for a, f in enumerate(self.fleets):
            load, pv = self.loads[a].day(date, physics[a])
            jitter = clocks[a].integers(-2, 3, (f.size, p))
            ad = AreaDay(
                fleet=f, day=day, g0=g0, dt_h=grid.dt_h, epoch0=grid.ts_epoch(g0), interval_s=grid.interval_s,
                shape=self.loads[a].weekend if date.weekday() >= 5 else self.loads[a].weekday,
                load=load, pv=pv, rng=np.random.default_rng([s.seed, f.index, STREAM_ANOMALY, day]),
                fed_by=np.full((f.size, p), a), tap_kwh=np.zeros(p),
                area_real_multiplier=np.full(p, float(f.area_multiplier)),
                real_multiplier=np.repeat(f.multiplier[:, None].astype(float), p, axis=1),
                clock_offset_s=clock_base[a][:, None] + jitter,
                delivered=np.ones((f.size, p), dtype=bool),
            )
            self._hooks(a, ad, "load")
            ad.set_flows()
            self._hooks(a, ad, "topology")
            areas.append(ad)

        # Area flows follow the wires, not the archive.
        flow = np.zeros((len(areas), p))
        for ad in areas:
            net = ad.imp - ad.exp
            for b in np.unique(ad.fed_by):
                flow[b] += (net * (ad.fed_by == b)).sum(axis=0)
        peak_kw = np.array([f.level_kw.sum() * 2.2 for f in self.fleets])
        ratio = np.clip(flow / grid.dt_h / np.maximum(peak_kw, 1e-6)[:, None], 0.0, 1.3)
        busbars = np.stack([busbar_voltage(f, ratio[a], physics[a]) for a, f in enumerate(self.fleets)])

        cols = np.arange(p)[None, :]
        for a, ad in enumerate(areas):
            f = ad.fleet
            ad.voltage = meter_voltage(f, busbars[ad.fed_by, cols], ratio[ad.fed_by, cols], physics[a])
            ad.pf = power_factor(f, p, physics[a])
            samples = np.random.default_rng([s.seed, f.index, STREAM_SAMPLES, ad.day])
            ad.current = phase_currents(f, sampled_power(f, (ad.imp + ad.exp) / grid.dt_h, samples), ad.voltage, ad.pf)
            ad.demand = demand_kw(ad.imp / grid.dt_h, physics[a])
            self._hooks(a, ad, "measure")
            ad.reported = ad.meas_fwd.copy()
            self._hooks(a, ad, "report")
            self._hooks(a, ad, "deliver")
            self._faults(a, ad)
            self._area_meter(ad, flow[a], busbars[a], physics[a])
        return areas

    def _faults(self, a: int, ad: AreaDay) -> None:
        """Gaps, readings replaced by malformed ones, and meter replacements of this area and day."""
        ad.missing_by_anomaly = int((~ad.delivered).sum())
        for area, m, g in self.faults.gaps.get(ad.day, ()):
            if area == a:
                ad.delivered[m, g - ad.g0] = False
        for k in range(ad.points):
            for mal in self.faults.malformed.get((a, ad.g0 + k), ()):
                if mal.replaces_reading:
                    ad.delivered[mal.meter, k] = False
            for m, units, _installed in self.faults.resets.get((a, ad.g0 + k), ()):
                ad.register_resets.append((m, k, units))
                ad.add_event(m, k, "meter_replaced")

    def _area_meter(self, ad: AreaDay, flow: np.ndarray, busbar: np.ndarray, rng: np.random.Generator) -> None:
        """The area meter: true flows plus technical loss plus any tap.

        Loss varies from day to day (temperature, load balance) and within the
        day (copper loss grows with load), around the area's own rate.
        """
        f = ad.fleet
        mean = max(float(flow.mean()), 1e-9)
        today = f.loss_rate * (1.0 + rng.normal(0.0, 0.08))
        loss = today * (0.6 + 0.4 * np.clip(flow / mean, 0.0, 3.0)) * (1.0 + rng.normal(0.0, 0.05, ad.points))
        ad.loss_rate = np.maximum(loss, 0.0)
        ad.area_kwh = np.maximum(flow * (1.0 + ad.loss_rate) + ad.tap_kwh, 0.0)
        ad.area_voltage = busbar
        amps = (ad.area_kwh / ad.dt_h * 1000.0 / 3.0)[:, None] / (busbar * 0.95)
        ad.area_current = amps / ad.area_real_multiplier[:, None]

    def _registers(
        self, ad: AreaDay, fwd0: np.ndarray, rev0: np.ndarray, area0: int
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Integer registers (1e-4 kWh, secondary) and reported energy; returns the day-end state."""
        f = ad.fleet
        archived = f.multiplier[:, None]
        inc = np.rint(ad.reported / ad.real_multiplier * 1e4).astype(np.int64)
        exact = ad.real_multiplier == archived
        ad.energy_units = np.where(exact, inc * archived, np.rint(ad.reported * 1e4).astype(np.int64))
        reg = fwd0[:, None] + np.cumsum(inc, axis=1)
        for m, k, delta in ad.register_steps:
            reg[m, k:] += delta
        for m, k, units in ad.register_resets:
            reg[m, k:] += units + inc[m, k] - reg[m, k]
        ad.reg_fwd_units = reg
        ad.reg_rev_units = rev0[:, None] + np.cumsum(np.rint(ad.meas_rev / ad.real_multiplier * 1e4).astype(np.int64), axis=1)
        area_inc = np.rint(ad.area_kwh / ad.area_real_multiplier * 1e4).astype(np.int64)
        ad.area_energy_units = area_inc * f.area_multiplier
        ad.area_reg_units = area0 + np.cumsum(area_inc)
        return reg[:, -1].copy(), ad.reg_rev_units[:, -1].copy(), int(ad.area_reg_units[-1])

    # --- publication ---------------------------------------------------------------------------

    def header(self) -> dict[str, Any]:
        s, grid = self.scenario, self.grid
        return {
            "scenario": s.name,
            "seed": s.seed,
            "areas": s.areas,
            "meters_per_area": s.meters_per_area,
            "meters": s.meters,
            "days": s.days,
            "interval_minutes": s.interval_minutes,
            "start": grid.ts(-1),
            "end": grid.ts(grid.total - 1),
            "shape": "meter_reading" if self.per_reading else "concentrator_upload",
        }

    def run(self, sink: Sink, speed: float = 0.0, progress: Callable[[int, int], None] | None = None) -> Summary:
        """Publish the whole run to ``sink``; ``speed`` > 0 paces it at that multiple of real time."""
        grid = self.grid
        summary = Summary(header=self.header(), labels=self.labels, plan_skipped=list(self.plan.skipped))
        summary.expected_readings = sum(f.size for f in self.fleets) * grid.total
        summary.not_delivered["gap"] = len(self.faults.gap_list())
        started = time.perf_counter()
        for f in self.fleets:
            sink.archive(f.area_id, orjson.dumps(f.archive_record(grid.ts(-1)), option=_DUMP_OPTIONS))
            summary.archives += 1
        sink.barrier()
        for label in self.labels:
            sink.label(label["subject_id"], orjson.dumps(label, option=_DUMP_OPTIONS))
        self._emit(sink, summary, {}, speed, progress)
        summary.elapsed_s = time.perf_counter() - started
        return summary

    def _emit(
        self, sink: Sink, summary: Summary, pending: dict[int, list[_Batch]], speed: float,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        grid = self.grid
        due: float | None = None  # when the next slot may go out (speed > 0)
        for areas in self.days():
            for ad in areas:
                summary.not_delivered["missing_data"] += ad.missing_by_anomaly
            builders = [AreaDayMessages(ad) for ad in areas]
            for k in range(grid.points_per_day):
                g = areas[0].g0 + k
                ts = grid.ts(g)
                for a, msgs in enumerate(builders):
                    self._interval(a, g, k, ts, msgs, pending, sink, summary)
                if speed > 0:
                    # Slots go out one interval / speed apart. Time lost building a day is not made up
                    # by sending the next slots at once: a paced feed never bursts above its speed.
                    now = time.perf_counter()
                    if due is not None and due > now:
                        time.sleep(due - now)
                        now = due
                    due = now + grid.interval_s / speed
                self._deliver(pending.pop(g, []), sink, summary)
                if progress is not None:
                    progress(g + 1, grid.total)
        for slot in sorted(pending):
            self._deliver(pending.pop(slot), sink, summary)

    def _interval(
        self, a: int, g: int, k: int, ts: str, msgs: AreaDayMessages,
        pending: dict[int, list[_Batch]], sink: Sink, summary: Summary,
    ) -> None:
        """Build what area ``a`` sends for interval ``g`` and schedule it."""
        f = self.fleets[a]
        for m, _units, installed in self.faults.resets.get((a, g), ()):
            f.installed_at[m] = installed
            sink.archive(f.area_id, orjson.dumps(f.archive_record(installed), option=_DUMP_OPTIONS))
            summary.archives += 1
            summary.register_resets += 1
        fault, delay = self.faults.upload.get((a, g), (None, 0))
        unit = "Wh" if fault == "unit_wh" else "kWh"
        malformed = self.faults.malformed.get((a, g), ())
        for mal in malformed:
            summary.malformed_by_reason[mal.reason] += 1
        delivered = msgs.delivered(k)
        items = msgs.item_texts(k, delivered, unit)
        summary.readings += len(delivered)
        summary.area_meter_readings += 1
        summary.not_delivered["malformed"] += sum(1 for mal in malformed if mal.replaces_reading)
        if sink.wants_csv:
            sink.csv(msgs.csv_rows(k, delivered))
            if events := msgs.csv_events(k):
                sink.events(events)
        conflicts = [(m, factor) for m, kk, factor in msgs.day.conflicts if kk == k and msgs.day.delivered[m, k]]

        batch = _Batch(a, g, delay, wh=unit == "Wh")
        if self.per_reading:
            for item in items:
                batch.messages.append(_Out(f.area_id, msgs.standalone("meter_reading", ts, item, unit), "meter_reading", items=1))
            area_msg = msgs.standalone("area_meter_reading", ts, msgs.area_item_text(k, unit), unit)
            batch.messages.append(_Out(f.area_id, area_msg, "area_meter_reading", area_items=1))
        else:
            bad = [orjson.dumps(bad_item(mal, msgs, k)).decode() for mal in malformed if mal.in_upload]
            upload = finish(msgs.upload(ts, items + bad, msgs.area_item_text(k, unit), unit))
            batch.messages.append(
                _Out(f.area_id, upload, "concentrator_upload", items=len(items) + len(bad), area_items=1, bad_items=len(bad))
            )
        for m, factor in conflicts:
            item = msgs.item(k, m, unit)
            item["energy"] = round(item["energy"] * factor, 4)
            text = orjson.dumps(item).decode()
            if sink.wants_csv:  # the re-sent values as ingest reads them (kWh; Wh / 1000 rounded as ingest does)
                energy = float(item["energy"]) if unit == "kWh" else round(item["energy"] / 1000, 9)
                if resent := msgs.csv_resent(k, m, energy):
                    sink.csv(resent)
            if self.per_reading:
                out = _Out(f.area_id, msgs.standalone("meter_reading", ts, text, unit), "meter_reading", items=1)
            else:
                out = _Out(f.area_id, msgs.upload(ts, [text], None, unit), "concentrator_upload", items=1)
            batch.messages.append(out)
            summary.conflicting += 1
        if fault == "duplicate":
            copies = [_Out(o.key, o.value, o.kind, o.items, o.area_items, o.bad_items) for o in batch.messages]
            for o in copies:
                summary.identical_messages += 1
                summary.identical_readings += o.items
                summary.identical_area_meter += o.area_items
            batch.messages.extend(copies)
        pending.setdefault(g + delay, []).append(batch)

        standalone = _Batch(a, g, 0)
        for mal in malformed:
            if not mal.in_upload:
                key, message = bad_message(mal, msgs, k)
                raw = message if isinstance(message, bytes) else finish(orjson.dumps(message))
                kind = "not_json" if isinstance(message, bytes) else message["kind"]
                reading = int(kind == "meter_reading")
                standalone.messages.append(_Out(key, raw, kind, items=reading, bad_items=reading))
                summary.malformed_messages += 1
        if standalone.messages:
            pending.setdefault(g, []).append(standalone)

    def _deliver(self, batches: list[_Batch], sink: Sink, summary: Summary) -> None:
        """Send one slot: area by area, on-time batches first, then late arrivals in interval order."""
        batches.sort(key=lambda b: (b.area, b.delay > 0, b.g))
        for batch in batches:
            for out in batch.messages:
                sink.raw(out.key, out.value)
                summary.messages_by_kind[out.kind] += 1
                summary.reading_items += out.items
                summary.area_meter_items += out.area_items
                summary.malformed_items += out.bad_items
                if batch.delay == 1:
                    summary.out_of_order += 1
                elif batch.delay > 1:
                    summary.late_uploads += 1
                summary.unit_wh += batch.wh
