"""``amiwatch up`` (what ``make run`` calls) brings the whole product up and down.

It runs against the session's broker (``KAFKA_BOOTSTRAP_SERVERS`` set, so
nothing local is started), feeds the demo scenario as fast as possible and,
with ``--until-done``, stops once the services went idle. The alerts must
have travelled simulator → ingest → detector → API store.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_ports

import schemas


def test_up_runs_every_service_and_alerts_reach_the_store(kafka_env: dict[str, str], tmp_path: Path) -> None:
    api_port, ingest_metrics, detector_metrics, detector_web = free_ports(4)
    state = Path(kafka_env["AMIWATCH_STATE_DIR"])
    env = {
        **kafka_env,
        "AMIWATCH_API_PORT": str(api_port),
        "AMIWATCH_INGEST_METRICS_PORT": str(ingest_metrics),
        "AMIWATCH_DETECTOR_METRICS_PORT": str(detector_metrics),
        "AMIWATCH_DETECTOR_WEB_PORT": str(detector_web),
        "AMIWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'up.db'}",
    }
    run = subprocess.run(
        [sys.executable, "-m", "amiwatch.cli", "up", "--speed", "0", "--until-done", "--idle", "5"],
        env=env, capture_output=True, text=True, timeout=480,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for line in ("kafka ", "ingest ", "detector ", "api ", "simulator "):
        assert any(out.startswith(line) for out in run.stdout.splitlines()), (line, run.stdout)
    assert f"http://127.0.0.1:{api_port}/docs" in run.stdout
    assert "PartitionsMismatch" not in run.stderr

    labels = (state / "labels.jsonl").read_text().splitlines()
    assert labels, "the simulator wrote no ground truth"
    catalogue = set(schemas.load("common")["$defs"]["anomaly_type"]["enum"])
    with sqlite3.connect(tmp_path / "up.db") as db:
        types = {row[0] for row in db.execute("select type from alerts")}
    # Event-like anomalies of the demo scenario are caught within its two days.
    assert {"tamper_event", "clock_skew", "register_decrease"} <= types, types
    assert types <= catalogue
