"""``amiwatch up`` (what ``make run`` calls) brings the whole product up and down.

It runs against the session's broker (``KAFKA_BOOTSTRAP_SERVERS`` set, so
nothing local is started), feeds the demo scenario as fast as possible and,
with ``--until-done``, stops once the services went idle. The alerts must
have travelled simulator → ingest → detector → API store.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import free_ports

import schemas


def _up_env(kafka_env: dict[str, str], tmp_path: Path) -> tuple[dict[str, str], int]:
    """``amiwatch up``'s environment on free ports with a store of its own, and the API's port."""
    api_port, ingest_metrics, detector_metrics, detector_web = free_ports(4)
    return {
        **kafka_env,
        "AMIWATCH_API_PORT": str(api_port),
        "AMIWATCH_INGEST_METRICS_PORT": str(ingest_metrics),
        "AMIWATCH_DETECTOR_METRICS_PORT": str(detector_metrics),
        "AMIWATCH_DETECTOR_WEB_PORT": str(detector_web),
        "AMIWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'up.db'}",
    }, api_port


def test_up_runs_every_service_and_alerts_reach_the_store(kafka_env: dict[str, str], tmp_path: Path) -> None:
    env, api_port = _up_env(kafka_env, tmp_path)
    state = Path(kafka_env["AMIWATCH_STATE_DIR"])
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


def test_sigterm_stops_up_and_every_child(kafka_env: dict[str, str], tmp_path: Path) -> None:
    """``kill <pid>`` of ``amiwatch up`` stops the services it started, as Ctrl-C does."""
    env, api_port = _up_env(kafka_env, tmp_path)
    up = subprocess.Popen([sys.executable, "-m", "amiwatch.cli", "up"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    children: dict[str, int] = {}
    assert up.stdout is not None
    for line in up.stdout:
        name, _, rest = line.partition(" ")
        if rest.strip().startswith("pid "):
            children[name] = int(rest.split()[1])
        if line.startswith("Ctrl-C"):
            break
    assert set(children) == {"ingest", "detector", "api", "simulator"}, children
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the API answers once it has started
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{api_port}/healthz", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    up.send_signal(signal.SIGTERM)
    assert up.wait(timeout=90) == 0
    for name, pid in children.items():
        assert not _alive(pid), f"{name} (pid {pid}) still runs after amiwatch up stopped"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has exited; only its parent's wait is missing
        return stat.read().split(") ", 1)[1][0] != "Z"
