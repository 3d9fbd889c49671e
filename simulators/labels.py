"""Ground-truth label records (schemas/label.json) for every injection, fault and malformed message.

Labels are derived from the plans before any reading is generated, so
they are complete and final when published. Ids run ``L000001``… in
this order: anomalies (by start), then faults (gaps, replacements,
upload faults by time), then malformed messages.

Times: ``start`` is the ``ts`` (interval end) of the first affected
reading, ``end`` that of the last one, or null when the anomaly lasts
to the end of the run.
"""

from __future__ import annotations

from typing import Any

from simulators.anomalies import Injection
from simulators.faults import FaultPlan
from simulators.fleet import AreaFleet
from simulators.malformed import written_epoch
from simulators.plan import Plan
from simulators.timegrid import TimeGrid, iso

__all__ = ["build_labels"]


def _label_variant(inj: Injection) -> str | None:
    # The planner tells an area-wide collection failure from a meter's by the
    # variant "area"; the contract says it with subject_kind alone.
    return None if inj.type == "missing_data" else inj.variant


def build_labels(
    plan: Plan, faults: FaultPlan, fleets: list[AreaFleet], grid: TimeGrid, per_reading: bool
) -> list[dict[str, Any]]:
    """All labels of a run, in publication order."""
    labels: list[dict[str, Any]] = []

    def add(kind: str, type_: str, variant: str | None, subject_kind: str, subject_id: str, area_id: str,
            start: str, end: str | None, params: dict[str, Any]) -> None:
        labels.append({
            "label_id": f"L{len(labels) + 1:06d}",
            "kind": kind,
            "type": type_,
            "variant": variant,
            "subject_kind": subject_kind,
            "subject_id": subject_id,
            "area_id": area_id,
            "start": start,
            "end": end,
            "params": params,
        })

    for inj in plan.injections:
        f = fleets[inj.area]
        subject = f.meter_ids[inj.meter] if inj.subject_kind == "meter" else f.area_id
        end = None if inj.end is None else grid.ts(inj.end)
        start = grid.ts(inj.start)
        add("anomaly", inj.type, _label_variant(inj), inj.subject_kind, subject, f.area_id, start, end, dict(inj.params))

    for a, m, g in faults.gap_list():
        f = fleets[a]
        add("fault", "gap", None, "meter", f.meter_ids[m], f.area_id, grid.ts(g), grid.ts(g), {})
    for (a, g), replaced in sorted(faults.resets.items(), key=lambda x: (x[0][1], x[0][0])):
        f = fleets[a]
        for m, units, installed in replaced:
            add("fault", "register_reset", None, "meter", f.meter_ids[m], f.area_id, grid.ts(g), grid.ts(g),
                {"installed_at": installed, "register_start_kwh": units / 1e4})
    shape = "meter_reading" if per_reading else "concentrator_upload"
    for (a, g), (name, delay) in sorted(faults.upload.items(), key=lambda x: (x[0][1], x[0][0])):
        f = fleets[a]
        params: dict[str, Any] = {"shape": shape}
        if delay:
            params |= {"delay_intervals": delay, "delivered_after": grid.ts(g + delay)}
        add("fault", name, None, "area", f.area_id, f.area_id, grid.ts(g), grid.ts(g), params)

    for (a, g), bad in sorted(faults.malformed.items(), key=lambda x: (x[0][1], x[0][0])):
        f = fleets[a]
        for mal in bad:
            written = iso(written_epoch(mal.reason, grid.ts_epoch(g), grid.interval_s))
            params = {"message_ref": mal.ref, "ts": written}
            if mal.reason == "not_json":
                params["container"] = "text"
            else:
                params["container"] = "concentrator_upload" if mal.in_upload else "meter_reading"
                if mal.meter is not None:
                    params["meter_id"] = f.meter_ids[mal.meter]
                else:  # schema, unknown_meter, unknown_area: the ref is the meter id
                    params["meter_id"] = mal.ref
            area_id = mal.ref if mal.reason == "unknown_area" else f.area_id
            subject = params.get("meter_id", area_id)
            subject_kind = "meter" if "meter_id" in params else "area"
            add("malformed", mal.reason, None, subject_kind, subject, area_id, grid.ts(g), grid.ts(g), params)
    return labels
