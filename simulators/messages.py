"""Valid raw messages from a finished ``AreaDay``: concentrator uploads, single readings, CSV rows.

Numbers are rounded where a real head-end rounds them: energies and
registers are exact multiples of 0.1 Wh (integers underneath, so
``energy == register difference × multiplier`` holds to the digit),
voltages to 0.1 V, currents to 1 mA, power factor and demand to three
decimals. ``register_rev`` is sent once a meter's reverse register has
moved off zero (PV, reversed wiring), as head-ends skip empty registers.

Speed: the standard scenario writes 28.8 M readings, and formatting a
float in Python costs microseconds. So each field of a whole area-day is
turned into JSON number text in one ``orjson.dumps`` call (C, shortest
round-trip form), and a reading is one string template filled with those
texts. The rare readings that need editing (malformed, conflicting
re-sends) are parsed back from the same text, so there is one format.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from simulators.areaday import AreaDay
from simulators.timegrid import iso

__all__ = ["AreaDayMessages", "UNIT_DIVISOR", "number_texts"]

UNIT_DIVISOR = {"kWh": 1e4, "Wh": 10.0}
"""Energy and registers are integers in 1e-4 kWh; dividing by this gives the unit."""


def number_texts(values: np.ndarray) -> list[str]:
    """JSON texts of ``values`` (flattened), formatted by orjson in one call."""
    return orjson.dumps(values.ravel().tolist()).decode()[1:-1].split(",")


class AreaDayMessages:
    """Builds the readings of one area and one day, interval by interval."""

    __slots__ = (
        "day", "area_id", "meter_ids", "single", "size", "three", "slot3", "energy", "reg_fwd", "reg_rev", "has_rev",
        "va", "vb", "vc", "ia", "ib", "ic", "pf", "demand", "meter_time",
        "area_energy", "area_reg", "area_v", "area_i",
    )

    def __init__(self, day: AreaDay) -> None:
        f = day.fleet
        self.day = day
        self.area_id = f.area_id
        self.meter_ids = f.meter_ids
        self.single = (f.phases == 1).tolist()
        self.size = f.size
        # Every per-meter field as texts in (interval, meter) order: index k * M + m; phases b
        # and c exist only on three-phase meters: index k * len(three) + slot3[m].
        three = np.flatnonzero(f.phases == 3)
        self.three = len(three)
        self.slot3 = np.cumsum(f.phases == 3).tolist()
        self.energy = number_texts(day.energy_units.T / 1e4)
        self.reg_fwd = number_texts(day.reg_fwd_units.T / 1e4)
        self.reg_rev = number_texts(day.reg_rev_units.T / 1e4)
        self.has_rev = (day.reg_rev_units.T > 0).ravel().tolist()
        self.va = number_texts(np.round(day.voltage[:, :, 0].T, 1))
        self.ia = number_texts(np.round(day.current[:, :, 0].T, 3))
        self.vb, self.vc = (number_texts(np.round(day.voltage[three, :, p].T, 1)) for p in (1, 2))
        self.ib, self.ic = (number_texts(np.round(day.current[three, :, p].T, 3)) for p in (1, 2))
        self.pf = number_texts(np.round(day.pf.T, 3))
        self.demand = number_texts(np.round(day.demand.T, 3))
        epochs = day.epoch0 + np.arange(day.points)[:, None] * day.interval_s + day.clock_offset_s.T
        self.meter_time = np.datetime_as_string(epochs.ravel().astype("datetime64[s]")).tolist()  # no "Z": the template adds it
        self.area_energy = number_texts(day.area_energy_units / 1e4)
        self.area_reg = number_texts(day.area_reg_units / 1e4)
        self.area_v = np.round(day.area_voltage, 1).tolist()
        self.area_i = np.round(day.area_current, 3).tolist()

    def delivered(self, k: int) -> list[int]:
        return np.flatnonzero(self.day.delivered[:, k]).tolist()

    def item_texts(self, k: int, meters: list[int], unit: str = "kWh") -> list[str]:
        """JSON texts of the reading items (the per-meter part of a reading) of ``meters`` at interval ``k``."""
        base, base3, slot3 = k * self.size, k * self.three - 1, self.slot3
        if unit == "kWh":
            energy, reg, rev, eb = self.energy, self.reg_fwd, self.reg_rev, base
        else:
            d, div = self.day, UNIT_DIVISOR[unit]
            energy, reg, rev = (number_texts(a[:, k] / div) for a in (d.energy_units, d.reg_fwd_units, d.reg_rev_units))
            eb = 0
        va, vb, vc, ia, ib, ic = self.va, self.vb, self.vc, self.ia, self.ib, self.ic
        pf, demand, mt = self.pf, self.demand, self.meter_time
        ids, single, events, has_rev = self.meter_ids, self.single, self.day.events, self.has_rev
        out = []
        for m in meters:
            i, e = base + m, eb + m
            if single[m]:
                vi = f'"voltage":{{"a":{va[i]}}},"current":{{"a":{ia[i]}}}'
            else:
                j = base3 + slot3[m]
                vi = f'"voltage":{{"a":{va[i]},"b":{vb[j]},"c":{vc[j]}}},"current":{{"a":{ia[i]},"b":{ib[j]},"c":{ic[j]}}}'
            registers = f'"register_fwd":{reg[e]},"register_rev":{rev[e]}' if has_rev[i] else f'"register_fwd":{reg[e]}'
            text = (
                f'{{"meter_id":"{ids[m]}","energy":{energy[e]},{registers},'
                f'{vi},"power_factor":{pf[i]},"demand_kw":{demand[i]},"meter_time":"{mt[i]}Z"'
            )
            ev = events.get((m, k)) if events else None
            out.append(f'{text},"events":{orjson.dumps(ev).decode()}}}' if ev else text + "}")
        return out

    def item(self, k: int, m: int, unit: str = "kWh") -> dict[str, Any]:
        """One reading item as a dict, for the few readings that get edited."""
        return orjson.loads(self.item_texts(k, [m], unit)[0])

    def area_item_text(self, k: int, unit: str = "kWh") -> str:
        if unit == "kWh":
            energy, reg = self.area_energy[k], self.area_reg[k]
        else:
            both = np.array([self.day.area_energy_units[k], self.day.area_reg_units[k]]) / UNIT_DIVISOR[unit]
            energy, reg = number_texts(both)
        v, i = self.area_v[k], self.area_i[k]
        return (
            f'{{"meter_id":"{self.day.fleet.area_meter_id}","energy":{energy},"register_fwd":{reg},'
            f'"voltage":{{"a":{v[0]},"b":{v[1]},"c":{v[2]}}},"current":{{"a":{i[0]},"b":{i[1]},"c":{i[2]}}},'
            f'"meter_time":"{iso(self.day.ts_epoch(k))}"}}'
        )

    def _context(self, kind: str, ts: str, unit: str) -> str:
        minutes = self.day.interval_s // 60
        return f'"kind":"{kind}","area_id":"{self.area_id}","ts":"{ts}","interval_minutes":{minutes},"unit":"{unit}"'

    def upload(self, ts: str, items: list[str], area_item: str | None, unit: str = "kWh") -> bytes:
        """A concentrator upload of item texts; a re-send of single readings carries no area meter."""
        f = self.day.fleet
        head = (
            f'{{"kind":"concentrator_upload","concentrator_id":"{f.concentrator_id}","area_id":"{f.area_id}",'
            f'"ts":"{ts}","interval_minutes":{self.day.interval_s // 60},"unit":"{unit}",'
        )
        area = f'"area_meter":{area_item},' if area_item is not None else ""
        return f'{head}{area}"readings":[{",".join(items)}]}}'.encode()

    def standalone(self, kind: str, ts: str, item: str, unit: str = "kWh") -> bytes:
        """A single ``meter_reading`` / ``area_meter_reading`` message around an item text."""
        return f"{{{self._context(kind, ts, unit)},{item[1:]}".encode()

    def standalone_dict(self, kind: str, ts: str, item: dict[str, Any], unit: str = "kWh") -> dict[str, Any]:
        """The same message as a dict, for malformed variants to break."""
        return orjson.loads(self.standalone(kind, ts, orjson.dumps(item).decode(), unit))

    def csv_rows(self, k: int, ts: str, meters: list[int]) -> str:
        """``meter_id,area_id,ts,energy_kwh,register_fwd_kwh,voltage_a_v,current_a_a`` rows, area meter last."""
        base = k * self.size
        e, r, v, c = self.energy, self.reg_fwd, self.va, self.ia
        ids, aid = self.meter_ids, self.area_id
        rows = [f"{ids[m]},{aid},{ts},{e[base + m]},{r[base + m]},{v[base + m]},{c[base + m]}\n" for m in meters]
        av, ai = self.area_v[k], self.area_i[k]
        rows.append(f"{self.day.fleet.area_meter_id},{aid},{ts},{self.area_energy[k]},{self.area_reg[k]},{av[0]},{ai[0]}\n")
        return "".join(rows)
