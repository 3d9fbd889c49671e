"""``deploy/grafana``: the datasource and dashboard provisioning, and every dashboard query.

Every metric a panel (or an alert rule) queries must be one the services
export: names come from the services' registries
(:func:`tests.operations.promql.exported_names`). Every query must be valid
PromQL: ``promtool check rules`` parses them. The scrape test
(``test_scrape.py``) then runs them against a real Prometheus.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.operations.promql import (
    DASHBOARD_FILE,
    DEPLOY,
    RULES_FILE,
    dashboard_queries,
    exported_names,
    grafana_to_promql,
    metric_names,
    recorded_names,
    rule_expressions,
)

GRAFANA = DEPLOY / "grafana"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "amiwatch.yml"
# Metrics Prometheus makes itself for every target.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    return exported_names(tmp_path_factory.mktemp("exported"))


def test_metric_names_reads_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, job) (rate(amiwatch_a_seconds_bucket{route!="/x", job=~"a|b"}[5m])))'
        ' / on (job) group_left (instance) max without (partition) (amiwatch_b_messages offset 1h)'
        ' or sum(increase(amiwatch_c_total[$__range])) > bool 2 and {__name__="amiwatch_d"} unless up'
    )
    assert metric_names(grafana_to_promql(expr)) == {"amiwatch_a_seconds_bucket", "amiwatch_b_messages", "amiwatch_c_total", "amiwatch_d", "up"}
    with pytest.raises(ValueError):
        grafana_to_promql("rate(x[$interval])")


def test_every_dashboard_query_names_an_exported_metric(exported: set[str]) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 20
    for title, expr in queries:
        names = metric_names(grafana_to_promql(expr))
        assert names, (title, expr)
        unknown = names - exported - PROMETHEUS_SERIES
        assert not unknown, f"panel {title!r} queries {unknown}, which no service exports"


def test_every_alert_rule_names_an_exported_metric(exported: set[str]) -> None:
    recorded = recorded_names()
    for name, expr in rule_expressions():
        unknown = metric_names(expr) - exported - recorded - PROMETHEUS_SERIES
        assert not unknown, f"rule {name} queries {unknown}, which no service exports"


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """promtool parses each query (as a recording rule); Grafana's own variables are given values first."""
    rules = [
        {"record": f"dashboard:query_{i}", "expr": grafana_to_promql(expr)}
        for i, (_title, expr) in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(rules)} rules found" in run.stdout, run.stdout


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    """Throughput, dead letters by reason, lag, latency, alerts by type, open inspections, loss classes."""
    queries = [expr for _title, expr in dashboard_queries()]
    used = set().union(*(metric_names(grafana_to_promql(q)) for q in queries))
    assert {"amiwatch_ingest_readings_total", "amiwatch_ingest_frames_emitted_total", "amiwatch_detector_frames_total"} <= used
    assert any("by (reason)" in q and 'result="rejected"' in q for q in queries), "dead letters by reason"
    assert {"amiwatch_ingest_consumer_lag_messages", "amiwatch_detector_consumer_lag_messages", "amiwatch_api_sink_lag_records"} <= used
    assert {"amiwatch_detector_frame_seconds_bucket", "amiwatch_ingest_batch_seconds_bucket", "amiwatch_api_request_duration_seconds_bucket"} <= used
    assert any("by (type)" in q and "amiwatch_detector_alerts_total" in q for q in queries), "alerts by type"
    assert any("by (severity)" in q and "amiwatch_detector_alerts_total" in q for q in queries), "alerts by severity"
    assert "amiwatch_api_inspections" in used
    assert any("by (loss_class)" in q for q in queries), "areas by loss class"
    assert {"amiwatch_api_sink_records_total", "amiwatch_api_webhook_deliveries_total", "amiwatch_api_alerts"} <= used


def test_dashboard_is_well_formed_and_uses_the_provisioned_datasource() -> None:
    datasources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert len(datasources) == 1 and datasources[0]["type"] == "prometheus"
    uid = datasources[0]["uid"]
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {(pos["x"] + dx, pos["y"] + dy) for dx in range(pos["w"]) for dy in range(pos["h"])}
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel.get("description"), f"panel {panel['title']!r} does not say what it means"
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_provisioning_points_where_the_bundle_mounts_things() -> None:
    """The datasource URL is the bundle's Prometheus; the dashboard provider reads where compose mounts the dashboards."""
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    url = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["url"]
    assert url == "http://prometheus:9090" and "prometheus" in services
    assert any(str(p).endswith(":9090") for p in services["prometheus"].get("ports", ()))
    provider_path = yaml.safe_load(PROVIDERS.read_text())["providers"][0]["options"]["path"]
    mounts = {
        v.split(":")[1]: (DEPLOY / v.split(":")[0]).resolve()
        for v in services["grafana"]["volumes"]
        if v.startswith("./")
    }
    assert mounts[provider_path] == DASHBOARD_FILE.parent.resolve()
    assert mounts["/etc/grafana/provisioning"] == (GRAFANA / "provisioning").resolve()
    prometheus_mounts = {v.split(":")[1]: (DEPLOY / v.split(":")[0]).resolve() for v in services["prometheus"]["volumes"] if v.startswith("./")}
    assert prometheus_mounts["/etc/prometheus"] == RULES_FILE.parents[1].resolve()
