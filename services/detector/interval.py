"""IntervalView: one frame placed against the area's state, as every per-interval rule sees it.

The pipeline builds it once per frame, before any detector runs and before
the area's registers move on, so each detector sees the previous register
and the completed energy without recomputing them. Rows are the frame's
readings of archived meters; ``idx`` maps them to archive/state rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.detector.frame import AreaFrame, Conflict

__all__ = ["IntervalView"]


@dataclass(frozen=True, slots=True, eq=False)
class IntervalView:
    """A frame with registers differenced and energy completed (arrays of length k = frame rows).

    ``late``: the frame is not newer than the newest frame already processed
    (a correction or an out-of-order delivery); sequence rules (runs of
    consecutive intervals, hysteresis) skip it. ``prev_register_*`` is the
    meter's previous register reading (secondary side), NaN when there is
    none, the meter was replaced, or this reading is not newer than it.
    ``register_delta_kwh`` = (register − previous) × archived multiplier, the
    primary-side energy since the previous reading, which may span a gap
    (``ts − prev_register_ts``). ``energy_kwh`` is the reported interval energy,
    else the register delta when the previous reading is exactly one interval
    earlier (``derived``), else NaN: a gap's lump is never booked into one
    interval. ``instantaneous_kwh`` is the energy the reading's own
    instantaneous values imply, Σ over phases of V·I·pf × interval × archived
    multiplier (NaN without them): a second witness of the interval's energy
    from the meter's other channel.
    """

    frame: AreaFrame
    idx: np.ndarray  # int64 [k]
    late: bool
    replaced: np.ndarray  # bool [k]: a meter_replaced event in this frame
    prev_register_fwd_kwh: np.ndarray  # float64 [k]
    prev_register_rev_kwh: np.ndarray  # float64 [k]
    prev_register_ts: np.ndarray  # int64 [k], 0 when unknown
    register_delta_kwh: np.ndarray  # float64 [k]
    register_rev_delta_kwh: np.ndarray  # float64 [k]
    energy_kwh: np.ndarray  # float64 [k]
    derived: np.ndarray  # bool [k]
    instantaneous_kwh: np.ndarray  # float64 [k]
    conflicts: tuple[Conflict, ...]
    area_energy_kwh: float  # the area meter's interval energy (reported, else from its register), NaN unknown

    @property
    def ts(self) -> int:
        """The interval's end (epoch s)."""
        return self.frame.ts

    @property
    def area_id(self) -> str:
        """The frame's area."""
        return self.frame.area_id

    @property
    def meter_ids(self) -> tuple[str, ...]:
        """The meter of each row."""
        return self.frame.meter_ids
