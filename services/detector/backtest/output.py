"""Where a backtest's alerts go: JSON lines as the alerts topic carries them, or a CSV of alerts.

``.jsonl`` (or ``.json``): every alert record (``open``/``update``/``resolve``)
in emission order, byte for byte what ``ami.alerts`` would carry, so the
file can be replayed into the API's sink or compared with a stream.
``.csv``: one row per alert, its latest state (as the API's sink would hold
it), ``evidence`` as a JSON cell.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import orjson

from services.detector.offline import fold_alerts

__all__ = ["CSV_COLUMNS", "write_alerts"]

CSV_COLUMNS = ("alert_id", "type", "subject_kind", "subject_id", "area_id", "severity", "score", "status",
               "first_seen", "last_seen", "evidence")  # fmt: skip


def write_alerts(path: Path, records: list[dict[str, Any]]) -> int:
    """Write ``records`` to ``path`` (format by suffix); return the number of lines or rows written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        alerts = fold_alerts(records)
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(CSV_COLUMNS)
            for alert in alerts:
                writer.writerow([*(alert[c] for c in CSV_COLUMNS[:-1]), orjson.dumps(alert["evidence"]).decode()])
        return len(alerts)
    with path.open("wb") as fh:
        for record in records:
            fh.write(orjson.dumps(record) + b"\n")
    return len(records)
