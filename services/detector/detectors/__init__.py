"""The detector registry: every detector the pipeline runs, in the order it runs them.

The order is the order findings reach the AlertBook, hence the order of the
alert records one frame produces; no detector reads another's output. One line
per detector; its state group is named after its ``name``.
"""

from __future__ import annotations

from services.detector.detectors.area_loss import AreaLoss
from services.detector.detectors.base import Detector
from services.detector.detectors.clock_skew import ClockSkew
from services.detector.detectors.consumption import ConsumptionFamily
from services.detector.detectors.consumption_swing import ConsumptionSwing
from services.detector.detectors.current_imbalance import CurrentImbalance
from services.detector.detectors.current_loss import CurrentLoss
from services.detector.detectors.duplicate_data import DuplicateData
from services.detector.detectors.interval_spike import IntervalSpike
from services.detector.detectors.low_power_factor import LowPowerFactor
from services.detector.detectors.meter_flying import MeterFlying
from services.detector.detectors.meter_stopped import MeterStopped
from services.detector.detectors.missing_data import MissingData
from services.detector.detectors.multiplier_mismatch import MultiplierMismatch
from services.detector.detectors.over_capacity import OverCapacity
from services.detector.detectors.register_decrease import RegisterDecrease
from services.detector.detectors.reverse_energy import ReverseEnergy
from services.detector.detectors.sustained_drop import SustainedDrop
from services.detector.detectors.tamper_event import TamperEvent
from services.detector.detectors.theft import TheftScore
from services.detector.detectors.usage_on_inactive import UsageOnInactive
from services.detector.detectors.voltage_loss import VoltageLoss
from services.detector.detectors.wrong_area import WrongAreaBalance, WrongAreaVoltage
from services.detector.detectors.zero_consumption import ZeroConsumption

__all__ = ["DETECTORS", "Detector"]

DETECTORS: tuple[Detector, ...] = (
    # data quality
    MissingData(),
    DuplicateData(),
    ClockSkew(),
    # registers and meter faults
    RegisterDecrease(),
    MeterStopped(),
    MeterFlying(),
    MultiplierMismatch(),
    ReverseEnergy(),
    # phases, events, contract
    VoltageLoss(),
    CurrentLoss(),
    TamperEvent(),
    OverCapacity(),
    UsageOnInactive(),
    # statistical detectors (services/detector/detectors/<type>.py, stats/, balance/)
    ConsumptionFamily(
        (ConsumptionSwing(), SustainedDrop(), ZeroConsumption(), AreaLoss(), WrongAreaBalance(), TheftScore())
    ),
    IntervalSpike(),
    LowPowerFactor(),
    CurrentImbalance(),
    WrongAreaVoltage(),
)
