"""A real Prometheus scrapes the running services with the shipped configuration and finds sensible values.

On the session's Kafka broker, with this test's topics: the simulator
publishes a small fleet (its summary says what it sent), ingest, one
detector worker and the API (its alert sink inside, SQLite store) run as
``amiwatch`` subprocesses, and Debian's ``prometheus`` server runs with
``deploy/prometheus/prometheus.yml``: the same jobs and rule files, only the
targets pointed at this test's ports and the intervals shortened to one
second. Everything is then read back through Prometheus's HTTP API:

- every amiwatch job is up, and the shipped rules are loaded and evaluate
  without error;
- the numbers agree with the simulator and with each other: dead letters
  by reason are exactly the simulator's malformed items, every raw message
  is counted once, every frame ingest emitted reached the detector, every
  alert the detector opened is in the API's store, lag drains to zero;
- every dashboard query runs, and returns data wherever this run has any;
- no label value anywhere is a meter or area id;
- when the API goes away, ``AmiwatchServiceDown`` goes pending for it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from services.ingest.validation import KINDS
from tests.conftest import free_ports
from tests.operations.promql import PROMETHEUS_DIR, alert_names, dashboard_queries, grafana_to_promql

WAIT_S = 150.0
# Dashboard queries that have no data in this run: nobody dispatched an inspection, so no
# inspection exists and no webhook event waits in the outbox.
EMPTY_HERE = ("amiwatch_api_inspections", "amiwatch_api_webhook_outbox")


class Processes:
    """Subprocesses of this test, each in its own session with a log file; all killed at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: dict[str, subprocess.Popen[bytes]] = {}
        self.expected_to_end: set[str] = {"simulator"}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.tmp_path / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(argv, env=env, cwd=self.tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started[name] = process
        return process

    def kill(self, name: str) -> None:
        self.expected_to_end.add(name)
        process = self.started[name]
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def kill_all(self) -> None:
        for name in list(self.started):
            self.kill(name)

    def logs(self, lines: int = 25) -> str:
        out = []
        for name, process in self.started.items():
            tail = (self.tmp_path / f"{name}.log").read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {name} (exit {process.poll()}) ---\n" + "\n".join(tail))
        return "\n".join(out)


class Prometheus:
    """Prometheus's HTTP API."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.client = httpx.Client(base_url=base, timeout=10)

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params)
        body = response.json()
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.get("/api/v1/query", query=expr)["result"]

    def value(self, expr: str) -> float | None:
        """The value of a query that returns at most one series (None: no series)."""
        result = self.query(expr)
        assert len(result) <= 1, (expr, result)
        return float(result[0]["value"][1]) if result else None

    def by(self, expr: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expr)}


def wait_for(what: str, check: Callable[[], object], processes: Processes, timeout: float = WAIT_S) -> None:
    """Poll ``check`` until it returns a true value; a failed ``assert`` in it means "not yet", with its message kept."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            if check():
                return
            last = "check returned false"
        except (httpx.HTTPError, AssertionError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        for name, process in processes.started.items():
            if name not in processes.expected_to_end and process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode} while waiting for {what}\n{processes.logs()}")
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last})\n{processes.logs()}")


def scrape_config(ports: dict[str, int], prometheus_port: int, tmp_path: Path) -> Path:
    """The shipped configuration with its targets pointed at this test's processes and 1 s intervals."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_DIR / pattern) for pattern in config["rule_files"]]
    targets = {
        "amiwatch-ingest": f"127.0.0.1:{ports['ingest']}",
        "amiwatch-detector": f"127.0.0.1:{ports['detector']}",
        "amiwatch-api": f"127.0.0.1:{ports['api']}",
        "prometheus": f"127.0.0.1:{prometheus_port}",
    }
    assert {job["job_name"] for job in config["scrape_configs"]} == set(targets)
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.kill_all()


def test_prometheus_scrapes_the_running_services(
    kafka_env: dict[str, str], prometheus_tools: dict[str, str], processes: Processes, tmp_path: Path
) -> None:
    ingest_port, detector_port, detector_web, api_port, prometheus_port = free_ports(5)
    ports = {"ingest": ingest_port, "detector": detector_port, "api": api_port}
    env = {
        **kafka_env,
        "AMIWATCH_API_HOST": "127.0.0.1",
        "AMIWATCH_API_PORT": str(api_port),
        "AMIWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}",
        "AMIWATCH_DETECTOR_COMMIT_INTERVAL_S": "0.5",
    }
    amiwatch = [sys.executable, "-m", "amiwatch.cli"]
    summary_path, fleet_dir = tmp_path / "summary.json", tmp_path / "fleet"

    # Prometheus first: a config it refuses fails fast, and it watches the services come up.
    config = scrape_config(ports, prometheus_port, tmp_path)
    check = subprocess.run([prometheus_tools["promtool"], "check", "config", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    processes.start("prometheus", [
        prometheus_tools["prometheus"], f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prometheus_port}", "--log.level=warn",
    ], env)  # fmt: skip
    processes.start("ingest", [*amiwatch, "ingest", "--metrics-port", str(ingest_port), "--worker", "ops", "--idle-flush", "1"], env)
    processes.start("detector", [*amiwatch, "detect", "--metrics-port", str(detector_port), "--web-port", str(detector_web),
                                 "--worker-name", "ops-detector"], env)  # fmt: skip
    processes.start("api", [*amiwatch, "api", "serve", "--port", str(api_port)], env)
    simulator = processes.start("simulator", [
        *amiwatch, "simulate", "--areas", "2", "--meters-per-area", "10", "--days", "2", "--seed", "3",
        "--summary", str(summary_path), "--out-dir", str(fleet_dir), "--no-progress",
    ], env)  # fmt: skip
    prom = Prometheus(f"http://127.0.0.1:{prometheus_port}")
    started = time.monotonic()

    # -- the targets are up and the shipped rules load and evaluate ----------------------------
    jobs = {"amiwatch-ingest", "amiwatch-detector", "amiwatch-api"}
    wait_for("every amiwatch target up", lambda: prom.by('up{job=~"amiwatch-.+"} == 1', "job").keys() == jobs, processes)
    timings = {"targets up": time.monotonic() - started}

    def rules_evaluated() -> bool:
        rules = [rule for group in prom.get("/api/v1/rules")["groups"] for rule in group["rules"]]
        assert sorted(r["name"] for r in rules if r["type"] == "alerting") == sorted(alert_names())
        assert all(r["health"] == "ok" for r in rules), [(r["name"], r["health"], r.get("lastError")) for r in rules]
        return True

    wait_for("the shipped rules loaded and evaluated without error", rules_evaluated, processes, timeout=30)

    # -- the numbers agree with what was sent, and with each other -----------------------------
    assert simulator.wait(timeout=WAIT_S) == 0, processes.logs()
    summary = json.loads(summary_path.read_text())
    wanted_rejected = summary["malformed"]["by_reason"]
    rejected = 'sum by (reason) (amiwatch_ingest_readings_total{result="rejected"})'

    def dead_letters_counted() -> bool:
        got = {r: v for r, v in prom.by(rejected, "reason").items() if v}
        assert got == wanted_rejected, got
        return True

    wait_for(f"ingest's dead letters {wanted_rejected}", dead_letters_counted, processes)
    # Every raw message judged exactly once, in its kind (not_json: unknown).
    wait_for(
        f"ingest to count all {summary['messages']['total']} raw messages",
        lambda: prom.value("sum(amiwatch_ingest_messages_total)") == summary["messages"]["total"],
        processes,
    )
    kinds: dict[str, float] = {}
    for kind, n in summary["messages"]["by_kind"].items():  # what is not a raw message kind counts as unknown
        kinds[kind if kind in KINDS else "unknown"] = kinds.get(kind if kind in KINDS else "unknown", 0) + n
    assert prom.by("sum by (kind) (amiwatch_ingest_messages_total) > 0", "kind") == kinds
    accepted = prom.value('sum(amiwatch_ingest_readings_total{result="accepted"})') or 0
    # Valid readings, plus the re-sent copies ingest accepts before dropping them as duplicates.
    assert summary["readings"] + summary["area_meter_readings"] <= accepted <= summary["reading_items"] + summary["area_meter_items"]

    def frames_all_processed() -> bool:
        emitted = prom.value("sum(amiwatch_ingest_frames_emitted_total)") or 0
        consumed = prom.value("sum(amiwatch_detector_frames_total)") or 0
        open_frames = prom.value("sum(amiwatch_ingest_open_frames)")
        assert emitted > 0 and consumed == emitted and open_frames == 0, (emitted, consumed, open_frames)
        return True

    wait_for("every frame ingest emitted to reach the detector", frames_all_processed, processes)
    frames = prom.value("sum(amiwatch_detector_frames_total)")
    assert prom.by("sum by (result) (amiwatch_detector_frames_total)", "result")["processed"] == frames
    assert prom.value("sum(amiwatch_detector_frame_seconds_count)") == frames
    median = prom.value("histogram_quantile(0.5, sum by (le) (amiwatch_detector_frame_seconds_bucket))")
    assert median is not None and 0 < median < 2.5, median
    # (the detector sets its areas gauge on a 5 s timer)
    wait_for("the detector's areas gauge", lambda: prom.value("sum(amiwatch_detector_areas)") == summary["areas"], processes, timeout=30)
    classes = prom.by("amiwatch_detector_areas_by_loss_class", "loss_class")
    assert sum(classes.values()) == summary["areas"], classes  # every area counted once, in one class

    opened = 'sum(amiwatch_detector_alerts_total{op="open"})'
    wait_for("alerts to be raised", lambda: (prom.value(opened) or 0) > 0, processes)

    def alerts_stored() -> bool:
        counts = [prom.value(q) for q in (opened, 'sum(amiwatch_api_sink_records_total{result="opened"})', "sum(amiwatch_api_alerts)")]
        assert counts[0] == counts[1] == counts[2], counts
        return True

    wait_for("every alert the detector opened in the API's store", alerts_stored, processes)
    by_type = prom.by('sum by (type) (amiwatch_detector_alerts_total{op="open"})', "type")
    assert by_type == prom.by("sum by (type) (amiwatch_api_alerts)", "type")
    # Lag drains: to zero for ingest and the sink; the detector's measure (end offset - 1 - last
    # frame's offset) counts the commit marker ending ingest's last transaction in a partition.
    partitions = int(kafka_env["AMIWATCH_PARTITIONS"])
    for lag, most in (("amiwatch_ingest_consumer_lag_messages", 0), ("amiwatch_api_sink_lag_records", 0),
                      ("amiwatch_detector_consumer_lag_messages", partitions)):  # fmt: skip
        wait_for(f"{lag} to drain", lambda lag=lag, most=most: 0 <= prom.value(f"sum({lag})") <= most, processes, timeout=30)
    timings["data through"] = time.monotonic() - started

    # -- the dashboard's queries run, with data wherever this run has some -----------------------
    for path in ("/healthz", "/readyz", "/api/v1/alerts"):  # some API traffic besides the scrapes
        httpx.get(f"http://127.0.0.1:{api_port}{path}", timeout=10)
    time.sleep(2.5)  # two scrapes, so rates over them are defined
    empty = []
    for title, expr in dashboard_queries():
        result = prom.query(grafana_to_promql(expr))  # raises unless Prometheus accepts it
        if not result and not any(name in expr for name in EMPTY_HERE):
            empty.append((title, expr))
    assert not empty, f"dashboard queries without data: {empty}"

    # -- bounded labels: no id among the label values of any amiwatch series --------------------
    series = prom.get("/api/v1/series", **{"match[]": '{__name__=~"amiwatch_.+"}'})
    assert 50 < len(series) < 2000, len(series)
    ids = {summary_id for line in (fleet_dir / "archive.jsonl").read_text().splitlines() for summary_id in _ids(json.loads(line))}
    assert len(ids) > summary["meters"]
    values = {v for s in series for k, v in s.items() if k not in ("__name__", "job", "instance")}
    assert not values & ids, values & ids

    # -- a service down: the rule sees it ------------------------------------------------------
    processes.kill("api")
    wait_for(
        "AmiwatchServiceDown pending for the API",
        lambda: prom.by('ALERTS{alertname="AmiwatchServiceDown"}', "job") == {"amiwatch-api": 1.0},
        processes,
        timeout=30,
    )
    state = prom.query('ALERTS{alertname="AmiwatchServiceDown"}')[0]["metric"]["alertstate"]
    assert state == "pending", state  # its `for: 2m` has not passed
    timings["done"] = time.monotonic() - started
    print(f"scrape test: {len(series)} amiwatch series, {frames:.0f} frames, {prom.value(opened):.0f} alerts; "
          + ", ".join(f"{k} at {v:.1f} s" for k, v in timings.items()))  # fmt: skip


def _ids(archive: dict[str, Any]) -> Iterator[str]:
    """Area, concentrator and meter ids named in one archive record."""
    for key, value in archive.items():
        if isinstance(value, str) and key.endswith("_id"):
            yield value
        elif isinstance(value, dict):
            yield from _ids(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    yield from _ids(item)
