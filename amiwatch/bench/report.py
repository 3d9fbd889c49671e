"""The bench's figures: their names and units, the median and spread of repetitions, the table and the JSON.

Each :class:`Figure` names a value in a repetition's result (a path of
keys), its unit and, where issue 5 sets one, its target. Over N
repetitions a figure is reported as its median with the min and max (the
spread); ``--json`` also keeps every repetition's full result.
"""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Figure", "FIGURES", "summarise", "table", "machine"]

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Figure:
    name: str  # key in the JSON's "figures"
    label: str  # the table's row
    path: tuple[str, ...]  # where in a repetition's result
    unit: str
    scale: float = 1.0  # value shown = value / scale
    digits: int = 0
    target: Callable[[float, bool], str | None] | None = None  # (median, per_reading) → "≥ x: met/missed"


def _at_least(goal: float, unit: str = "") -> Callable[[float, bool], str]:
    return lambda v, _: f"≥ {goal:,g}{unit}: {'met' if v >= goal else f'{v / goal:.2f} of it'}"


def _at_most(goal: float, unit: str = "") -> Callable[[float, bool], str]:
    return lambda v, _: f"≤ {goal:,g}{unit}: {'met' if v <= goal else f'{v / goal:.2f}× over'}"


def _pipeline_target(v: float, per_reading: bool) -> str | None:
    return None if per_reading else _at_least(250_000)(v, per_reading)


def _ingest_target(v: float, per_reading: bool) -> str | None:
    return _at_least(50_000)(v, per_reading) if per_reading else None


FIGURES: tuple[Figure, ...] = (
    Figure("bare_readings_per_s", "bare aiokafka consumer", ("bare", "readings_per_s"), "readings/s"),
    Figure("ingest_readings_per_s", "ingest alone", ("ingest", "readings_per_s"), "readings/s", target=_ingest_target),
    Figure("detector_readings_per_s", "detector alone", ("detector", "readings_per_s"), "readings/s"),
    Figure("pipeline_readings_per_s", "pipeline to alerts in the API store", ("pipeline", "readings_per_s"),
           "readings/s", target=_pipeline_target),
    Figure("pipeline_bare_ratio", "pipeline / bare consumer", ("pipeline", "bare_ratio"), "ratio", digits=3,
           target=_at_least(0.5)),
    Figure("latency_offered_readings_per_s", "latency phase: offered load", ("latency", "offered_readings_per_s"),
           "readings/s"),
    Figure("latency_p50_s", "alert latency p50", ("latency", "p50_s"), "s", digits=2),
    Figure("latency_p99_s", "alert latency p99", ("latency", "p99_s"), "s", digits=2, target=_at_most(2, " s")),
    Figure("latency_samples", "alert latency samples", ("latency", "samples"), "alerts"),
    *(Figure(f"latency_{stage}_p50_s", f"  {label} p50", ("latency", "stages", stage, "p50_s"), "s", digits=2)
      for stage, label in (("ingest", "ingest hop"), ("ingest_complete", "  of frames closed complete"),
                           ("ingest_grace", "  of frames closed by grace"), ("detector", "detector hop"),
                           ("api", "API hop"))),
    Figure("rss_bare_mib", "peak RSS bare consumer", ("bare", "peak_rss_bytes"), "MiB", MiB, 1),
    Figure("rss_ingest_alone_mib", "peak RSS ingest (alone)", ("ingest", "peak_rss_bytes"), "MiB", MiB, 1),
    Figure("rss_detector_alone_mib", "peak RSS detector (alone)", ("detector", "peak_rss_bytes"), "MiB", MiB, 1),
    Figure("rss_pipeline_ingest_mib", "peak RSS ingest (pipeline)", ("pipeline", "peak_rss_bytes", "ingest"), "MiB", MiB, 1),
    Figure("rss_pipeline_detector_mib", "peak RSS detector (pipeline)", ("pipeline", "peak_rss_bytes", "detector"),
           "MiB", MiB, 1),
    Figure("rss_pipeline_api_mib", "peak RSS API (pipeline)", ("pipeline", "peak_rss_bytes", "api"), "MiB", MiB, 1),
    Figure("state_bytes_per_meter", "detector state per meter (live)", ("state", "state_bytes_per_meter"),
           "bytes", target=_at_most(1024, " B")),
    Figure("state_record_bytes_per_meter", "  as written to area_state (lz4)", ("state", "state_record_bytes_per_meter"),
           "bytes"),
    Figure("changelog_bytes_per_reading", "changelog written per reading (records)",
           ("state", "changelog_bytes_per_reading"), "bytes", digits=1, target=_at_most(32, " B")),
    Figure("changelog_disk_bytes_per_reading", "changelog written per reading (on disk)",
           ("state", "changelog_disk_bytes_per_reading"), "bytes", digits=1, target=_at_most(32, " B")),
    Figure("area_state_changelog_bytes_per_reading", "  of which area_state (records)",
           ("state", "area_state_changelog_bytes_per_reading"), "bytes", digits=1),
)


def _get(result: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return None if value is None else float(value)


def summarise(results: list[dict[str, Any]], per_reading: bool) -> dict[str, dict[str, Any]]:
    """Figure name → median, min, max, every repetition's value (already scaled), unit, target."""
    out: dict[str, dict[str, Any]] = {}
    for f in FIGURES:
        values = [v / f.scale for r in results if (v := _get(r, f.path)) is not None]
        if not values:
            out[f.name] = {"median": None, "min": None, "max": None, "values": [], "unit": f.unit, "target": None}
            continue
        median = statistics.median(values)
        out[f.name] = {
            "median": median, "min": min(values), "max": max(values), "values": values, "unit": f.unit,
            "target": f.target(median, per_reading) if f.target else None,
        }
    return out


def table(figures: dict[str, dict[str, Any]], repeats: int) -> str:
    """The figures as an aligned text table (median, spread, unit, target)."""
    rows = [("figure", f"median of {repeats}", "min – max", "unit", "issue 5 target")]
    for f in FIGURES:
        s = figures[f.name]
        if s["median"] is None:
            rows.append((f.label, "n/a", "", f.unit, ""))
            continue
        fmt = f"{{:,.{f.digits}f}}"
        spread = f"{fmt.format(s['min'])} – {fmt.format(s['max'])}" if repeats > 1 else ""
        rows.append((f.label, fmt.format(s["median"]), spread, f.unit, s["target"] or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:3], widths[1:3])] + \
                [row[3].ljust(widths[3]), row[4]]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """What the figures were measured on: CPUs, memory, load average, Python."""
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal:"))
    except (OSError, StopIteration):
        mem_kib = 0
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "load_average": list(os.getloadavg()),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
