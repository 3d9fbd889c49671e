"""``amiwatch bench`` measures every figure of issue 5 on the real broker (a tiny fleet, once).

The figures of so small a run say nothing about performance; this checks
that each is measured and sane: rates positive, the pipeline a positive
share of the bare consumer, p99 ≥ p50, every process's peak RSS above zero,
state and changelog bytes positive. It runs on the session broker under the
test's topic prefix (the bench adds its own prefixes per phase, so the
topics it creates are its own) and deletes what it created.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from amiwatch.bench.report import FIGURES


def test_bench_writes_every_figure(kafka_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "amiwatch.cli", "bench", "--areas", "2", "--meters-per-area", "10", "--days", "1",
         "--repeat", "1", "--latency-seconds", "3", "--timeout", "120", "--run-id", "t" + kafka_env["AMIWATCH_TOPIC_PREFIX"].strip("."),
         "--json", str(out)],
        env=kafka_env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    assert "pipeline / bare consumer" in run.stdout  # the table
    assert "bare aiokafka consumer draining" in run.stderr  # progress

    document = json.loads(out.read_text())
    figures = document["figures"]
    assert set(figures) == {f.name for f in FIGURES}
    # How the latency samples' frames closed depends on the phase's data: a split may be empty.
    optional = {"latency_ingest_complete_p50_s", "latency_ingest_grace_p50_s"}
    missing = [name for name, figure in figures.items() if figure["median"] is None and name not in optional]
    assert not missing, missing
    for name in ("bare_readings_per_s", "ingest_readings_per_s", "detector_readings_per_s",
                 "pipeline_readings_per_s", "latency_offered_readings_per_s"):
        assert figures[name]["median"] > 0, name
    assert figures["pipeline_bare_ratio"]["median"] > 0
    assert figures["latency_samples"]["median"] >= 1
    assert 0 <= figures["latency_p50_s"]["median"] <= figures["latency_p99_s"]["median"] < 120
    for name in [n for n in figures if n.startswith("rss_")]:
        assert figures[name]["median"] > 0, name
    assert figures["state_bytes_per_meter"]["median"] > 0
    assert figures["changelog_bytes_per_reading"]["median"] > 0
    assert figures["changelog_disk_bytes_per_reading"]["median"] > 0
    assert document["repeat"] == 1 and len(document["repetitions"]) == 1
    assert document["machine"]["cpus"] >= 1
