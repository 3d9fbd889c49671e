"""Valid raw messages from a finished ``AreaDay``: concentrator uploads, single readings, CSV rows.

Numbers are rounded where a real head-end rounds them: energies and
registers are exact multiples of 0.1 Wh (integers underneath, so
``energy == register difference × multiplier`` holds to the digit),
voltages to 0.1 V, currents to 1 mA, power factor and demand to three
decimals. ``register_rev`` is sent once a meter's reverse register has
moved off zero (PV, reversed wiring), as head-ends skip empty registers.

Speed: the standard scenario writes 28.8 M readings, and formatting a
float in Python costs microseconds. So each field of an area's interval
is turned into JSON number text in one ``orjson.dumps`` call (C, shortest
round-trip form), and a reading is one string template filled with those
texts. The rare readings that need editing (malformed, conflicting
re-sends) are parsed back from the same text, so there is one format.

CSV export (``readings.csv``, ``events.csv``): one row per delivered
reading with every column ingest normalises (``CSV_COLUMNS``), holding
exactly the value ingest derives from the raw message: the same number
texts (a value in ``Wh`` is the same float once ingest divides it by
1000), empty where the message carries no such field (phases b and c of
single-phase meters; ``register_rev`` until it moves; power factor,
demand and ``register_rev`` of the area meter), and ``clock_offset_s`` =
``meter_time − ts`` as whole seconds. Rows follow the same approach: at
an interval's first ``csv_rows`` call each column becomes a list of
texts (mostly the message texts themselves; runs without a file sink
never build them), and an interval's rows are one ``",".join`` per
reading over those columns zipped: no per-reading dict or float format.
Texts exist for one interval at a time: a whole day of them was ~20 KB
per meter at hourly data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from simulators.areaday import AreaDay
from simulators.timegrid import iso

__all__ = ["AreaDayMessages", "CSV_COLUMNS", "EVENTS_COLUMNS", "UNIT_DIVISOR", "number_texts"]

CSV_COLUMNS: tuple[str, ...] = (
    "meter_id", "area_id", "ts",
    "energy_kwh", "register_fwd_kwh", "register_rev_kwh",
    "voltage_a_v", "voltage_b_v", "voltage_c_v", "current_a_a", "current_b_a", "current_c_a",
    "power_factor", "demand_kw", "clock_offset_s",
)  # fmt: skip
"""``readings.csv``'s columns: the reading's identity, then ``services.ingest.normalise.COLUMNS`` in order."""

EVENTS_COLUMNS: tuple[str, ...] = ("meter_id", "at", "code", "ts")
"""``events.csv``'s columns: a delivered reading's meter events, ``ts`` the interval end of that reading."""

UNIT_DIVISOR = {"kWh": 1e4, "Wh": 10.0}
"""Energy and registers are integers in 1e-4 kWh; dividing by this gives the unit."""


def number_texts(values: np.ndarray) -> list[str]:
    """JSON texts of ``values`` (flattened), formatted by orjson in one call."""
    return orjson.dumps(values.ravel().tolist()).decode()[1:-1].split(",")


class _IntervalTexts:
    """Every per-meter field of one interval as JSON number texts, index m (phases b and c: slot3[m] - 1)."""

    __slots__ = ("k", "energy", "reg_fwd", "reg_rev", "has_rev", "va", "vb", "vc", "ia", "ib", "ic", "pf", "demand",
                 "meter_time")

    def __init__(self, day: AreaDay, k: int, three: np.ndarray) -> None:
        self.k = k
        self.energy = number_texts(day.energy_units[:, k] / 1e4)
        self.reg_fwd = number_texts(day.reg_fwd_units[:, k] / 1e4)
        self.reg_rev = number_texts(day.reg_rev_units[:, k] / 1e4)
        self.has_rev = (day.reg_rev_units[:, k] > 0).tolist()
        self.va = number_texts(np.round(day.voltage[:, k, 0], 1))
        self.ia = number_texts(np.round(day.current[:, k, 0], 3))
        self.vb, self.vc = (number_texts(np.round(day.voltage[three, k, p], 1)) for p in (1, 2))
        self.ib, self.ic = (number_texts(np.round(day.current[three, k, p], 3)) for p in (1, 2))
        self.pf = number_texts(np.round(day.pf[:, k], 3))
        self.demand = number_texts(np.round(day.demand[:, k], 3))
        epochs = day.ts_epoch(k) + day.clock_offset_s[:, k]
        self.meter_time = np.datetime_as_string(epochs.astype("datetime64[s]")).tolist()  # no "Z": the template adds it


class AreaDayMessages:
    """Builds the readings of one area and one day, interval by interval.

    Texts are made for one interval at a time (the one asked for last):
    a day of every field's texts costs ~20 KB per meter at hourly data,
    which a million meters cannot hold.
    """

    __slots__ = (
        "day", "area_id", "meter_ids", "single", "size", "three", "slot3",
        "area_energy", "area_reg", "area_v", "area_i", "_texts", "_csv", "_events",
    )

    def __init__(self, day: AreaDay) -> None:
        f = day.fleet
        self.day = day
        self.area_id = f.area_id
        self.meter_ids = f.meter_ids
        self.single = (f.phases == 1).tolist()
        self.size = f.size
        self.three = np.flatnonzero(f.phases == 3)
        self.slot3 = np.cumsum(f.phases == 3).tolist()
        self.area_energy = number_texts(day.area_energy_units / 1e4)
        self.area_reg = number_texts(day.area_reg_units / 1e4)
        self.area_v = np.round(day.area_voltage, 1).tolist()
        self.area_i = np.round(day.area_current, 3).tolist()
        self._texts: _IntervalTexts | None = None
        self._csv: list[list[str]] | None = None  # the CSV columns of the interval _texts holds
        self._events: dict[int, list[tuple[int, str]]] | None = None

    def _at(self, k: int) -> _IntervalTexts:
        """Interval ``k``'s texts, made on the first call for ``k``."""
        texts = self._texts
        if texts is None or texts.k != k:
            texts = self._texts = _IntervalTexts(self.day, k, self.three)
            self._csv = None
        return texts

    def delivered(self, k: int) -> list[int]:
        return np.flatnonzero(self.day.delivered[:, k]).tolist()

    def item_texts(self, k: int, meters: list[int], unit: str = "kWh") -> list[str]:
        """JSON texts of the reading items (the per-meter part of a reading) of ``meters`` at interval ``k``."""
        t, slot3 = self._at(k), self.slot3
        if unit == "kWh":
            energy, reg, rev = t.energy, t.reg_fwd, t.reg_rev
        else:
            d, div = self.day, UNIT_DIVISOR[unit]
            energy, reg, rev = (number_texts(a[:, k] / div) for a in (d.energy_units, d.reg_fwd_units, d.reg_rev_units))
        va, vb, vc, ia, ib, ic = t.va, t.vb, t.vc, t.ia, t.ib, t.ic
        pf, demand, mt = t.pf, t.demand, t.meter_time
        ids, single, events, has_rev = self.meter_ids, self.single, self.day.events, t.has_rev
        out = []
        for m in meters:
            if single[m]:
                vi = f'"voltage":{{"a":{va[m]}}},"current":{{"a":{ia[m]}}}'
            else:
                j = slot3[m] - 1
                vi = f'"voltage":{{"a":{va[m]},"b":{vb[j]},"c":{vc[j]}}},"current":{{"a":{ia[m]},"b":{ib[j]},"c":{ic[j]}}}'
            registers = f'"register_fwd":{reg[m]},"register_rev":{rev[m]}' if has_rev[m] else f'"register_fwd":{reg[m]}'
            text = (
                f'{{"meter_id":"{ids[m]}","energy":{energy[m]},{registers},'
                f'{vi},"power_factor":{pf[m]},"demand_kw":{demand[m]},"meter_time":"{mt[m]}Z"'
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

    def _csv_columns(self, k: int) -> list[list[str]]:
        """Each CSV column's texts of interval ``k``, index m, as the kWh upload carries them.

        Mostly references to the message texts: a row is one ``",".join`` over them.
        """
        d, t, size = self.day, self._at(k), self.size
        stamp = d.ts_epoch(k)
        # meter_time (whole seconds, the same conversion as its texts) minus the message's ts, as ingest computes it;
        # few distinct values, so each is formatted once.
        meter_time = (stamp + d.clock_offset_s[:, k]).astype("datetime64[s]").astype(np.int64)
        offsets, which = np.unique(meter_time - stamp, return_inverse=True)
        offset = np.array(number_texts(offsets.astype(np.float64)), dtype=object)[which].tolist()

        def spread(texts: list[str]) -> list[str]:  # three-phase meters' texts at their meters, "" elsewhere
            out = np.full(size, "", dtype=object)
            out[self.three] = texts
            return out.tolist()

        rev = [text if moved else "" for text, moved in zip(t.reg_rev, t.has_rev, strict=True)]
        heads = [f"{m},{self.area_id}" for m in self.meter_ids]
        return [
            heads, [iso(stamp)] * size, t.energy, t.reg_fwd, rev, t.va, spread(t.vb), spread(t.vc),
            t.ia, spread(t.ib), spread(t.ic), t.pf, t.demand, offset,
        ]  # fmt: skip

    def _csv_at(self, k: int) -> list[list[str]]:
        self._at(k)
        if self._csv is None:
            self._csv = self._csv_columns(k)
        return self._csv

    def csv_rows(self, k: int, meters: list[int]) -> str:
        """``readings.csv`` rows (``CSV_COLUMNS``) of ``meters`` at interval ``k``, area meter last."""
        rows = list(map(",".join, zip(*self._csv_at(k))))
        if len(meters) != self.size:
            rows = [rows[m] for m in meters]
        av, ai = self.area_v[k], self.area_i[k]
        rows.append(
            f"{self.day.fleet.area_meter_id},{self.area_id},{iso(self.day.ts_epoch(k))},{self.area_energy[k]},"
            f"{self.area_reg[k]},,{av[0]},{av[1]},{av[2]},{ai[0]},{ai[1]},{ai[2]},,,0.0\n"
        )
        return "\n".join(rows)

    def csv_resent(self, k: int, m: int, energy_kwh: float) -> str:
        """The row of a re-send of meter ``m`` at ``k`` with another energy (kWh, as ingest has it); "" if it is the same.

        Ingest drops a re-send that equals the reading (an energy of 0 stays 0 whatever the factor), so the export does too.
        """
        cells = [c[m] for c in self._csv_at(k)]
        if float(cells[2]) == energy_kwh:  # heads holds meter_id and area_id: energy is the third text
            return ""
        cells[2] = repr(energy_kwh)
        return ",".join(cells) + "\n"

    def csv_events(self, k: int) -> str:
        """``events.csv`` rows (``EVENTS_COLUMNS``) of the readings delivered at interval ``k``."""
        if self._events is None:
            self._events = {}
            for (m, kk), evs in sorted(self.day.events.items()):
                for ev in evs:
                    self._events.setdefault(kk, []).append((m, f"{ev['at']},{ev['code']}"))
        here = self._events.get(k)
        if not here:
            return ""
        ts, ids, delivered = iso(self.day.ts_epoch(k)), self.meter_ids, self.day.delivered
        return "".join(f"{ids[m]},{text},{ts}\n" for m, text in here if delivered[m, k])
