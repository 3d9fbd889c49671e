"""One area over one day: the true physics, what the meters measure, and what they report.

The generator fills an ``AreaDay`` in stages, and the anomaly injectors
edit it between stages. Keeping the three layers apart is what makes the
ground truth exact:

- ``load``/``pv`` and the flows ``imp``/``exp`` are what really happens
  on the wire; the area meter sees these (plus any unmetered tap);
- ``meas_fwd``/``meas_rev``, ``current``, ``voltage`` are what the meter
  measures (a bypass makes it measure less);
- ``reported`` is the interval energy it reports (false-data attacks
  change it); registers integrate it.

So a bypass raises the area's loss by exactly ``imp − reported`` of the
thief, and a flat-profile attack (h5) keeps the day's total.
All energies are kWh per interval, arrays are (meters M, intervals P).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulators.fleet import AreaFleet
from simulators.timegrid import iso

__all__ = ["AreaDay"]


@dataclass(slots=True, eq=False)
class AreaDay:
    """The state of one area for one day while it is generated."""

    fleet: AreaFleet
    day: int
    g0: int  # global index of the day's first interval
    dt_h: float
    epoch0: int  # epoch seconds of the end of the day's first interval
    interval_s: int
    shape: np.ndarray  # (M, P) the day's load shape (for injectors that invent plausible load)
    load: np.ndarray  # (M, P) kW consumed
    pv: np.ndarray  # (M, P) kW generated
    rng: np.random.Generator  # anomaly randomness of this area and day (own stream)
    fed_by: np.ndarray  # (M, P) position of the area whose transformer really feeds the meter
    tap_kwh: np.ndarray  # (P,) unmetered tap on this area's lines
    area_real_multiplier: np.ndarray  # (P,) the area meter's real CT ratio
    real_multiplier: np.ndarray  # (M, P) each meter's real CT ratio
    clock_offset_s: np.ndarray  # (M, P) int
    delivered: np.ndarray  # (M, P) bool: the reading reaches the head-end
    imp: np.ndarray = field(init=False)
    exp: np.ndarray = field(init=False)
    meas_fwd: np.ndarray = field(init=False)
    meas_rev: np.ndarray = field(init=False)
    reported: np.ndarray = field(init=False)
    voltage: np.ndarray = field(init=False)  # (M, P, 3)
    current: np.ndarray = field(init=False)  # (M, P, 3)
    pf: np.ndarray = field(init=False)
    demand: np.ndarray = field(init=False)
    events: dict[tuple[int, int], list[dict[str, str]]] = field(default_factory=dict)
    register_steps: list[tuple[int, int, int]] = field(default_factory=list)  # (m, k, delta units)
    register_resets: list[tuple[int, int, int]] = field(default_factory=list)  # (m, k, new units)
    conflicts: list[tuple[int, int, float]] = field(default_factory=list)  # (m, k, factor) re-sent differently
    missing_by_anomaly: int = 0  # readings the delivery injectors withheld
    # Filled by the generator once the day is complete.
    energy_units: np.ndarray = field(init=False)  # (M, P) int64, 1e-4 kWh, primary
    reg_fwd_units: np.ndarray = field(init=False)  # (M, P) int64, secondary
    reg_rev_units: np.ndarray = field(init=False)
    area_kwh: np.ndarray = field(init=False)  # (P,) true energy through the area meter
    area_energy_units: np.ndarray = field(init=False)  # (P,) as reported
    area_reg_units: np.ndarray = field(init=False)
    area_voltage: np.ndarray = field(init=False)  # (P, 3)
    area_current: np.ndarray = field(init=False)  # (P, 3)
    loss_rate: np.ndarray = field(init=False)  # (P,) technical loss applied

    @property
    def points(self) -> int:
        return self.load.shape[1]

    def set_flows(self) -> None:
        """Split net load into import/export and start measurement equal to the truth."""
        net = (self.load - self.pv) * self.dt_h
        self.imp = np.maximum(net, 0.0)
        self.exp = np.maximum(-net, 0.0)
        self.meas_fwd = self.imp.copy()
        self.meas_rev = self.exp.copy()

    def ts_epoch(self, k: int) -> int:
        return self.epoch0 + k * self.interval_s

    def add_event(self, m: int, k: int, code: str) -> None:
        """Record meter event ``code`` inside interval ``k``, stamped by the meter's own clock."""
        at = self.ts_epoch(k) - self.interval_s // 2 + int(self.clock_offset_s[m, k])
        self.events.setdefault((m, k), []).append({"code": code, "at": iso(at)})
