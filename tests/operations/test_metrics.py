"""The services' metrics follow the rules operators rely on: namespace, units, bounded labels, never an id.

Names and label sets are read from the registries the services build
(:func:`tests.operations.promql.exported_families`), not from a list kept
here. The detector's loss-class and alert counts are checked on its real
state classes.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import schemas
from services.detector import metrics as detector_metrics
from services.detector.findings import Finding
from services.detector.state import AreaState
from services.detector.thresholds import load_thresholds
from tests.operations.promql import exported_families

# Every label any amiwatch metric may carry, each with values from a fixed set (kinds,
# reason codes, results, outcomes, partition numbers, anomaly types, severities, ops,
# loss classes, HTTP method, route template and status, store statuses).
BOUNDED_LABELS = {
    "kind", "result", "reason", "closed_by", "outcome", "partition", "type", "severity", "op",
    "loss_class", "method", "route", "status", "state", "le", "found_by",
}  # fmt: skip
UNIT_SUFFIXES = ("_seconds", "_messages", "_records", "_bytes")


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    families = exported_families(tmp_path_factory.mktemp("metrics"))
    return {service: [f for f in fams if f.name.startswith("amiwatch_")] for service, fams in families.items()}


def test_every_service_exports_its_metrics_under_its_namespace(ours: dict[str, list]) -> None:
    for service, families in ours.items():
        assert len(families) >= 5, (service, [f.name for f in families])
        for family in families:
            assert family.name.startswith(f"amiwatch_{service}_"), family.name
            assert re.fullmatch(r"[a-z][a-z0-9_]*", family.name), family.name
            assert family.documentation, f"{family.name} has no help text"


def test_names_carry_their_units(ours: dict[str, list]) -> None:
    for family in (f for families in ours.values() for f in families):
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), f"{family.name}: a histogram of durations is in seconds"
        if "lag" in family.name or "timestamp" in family.name or "duration" in family.name:
            assert family.name.endswith(UNIT_SUFFIXES), f"{family.name}: say the unit"
        for sample in family.samples:
            if family.type == "counter":
                assert sample.name.endswith(("_total", "_created")), sample.name


def test_labels_are_bounded_and_never_ids(ours: dict[str, list]) -> None:
    for family in (f for families in ours.values() for f in families):
        for sample in family.samples:
            assert set(sample.labels) <= BOUNDED_LABELS, (family.name, sample.labels)


def test_the_issues_questions_have_metrics(ours: dict[str, list]) -> None:
    """Readings in and rejected by reason, frames and corrections, lag per service, latency histograms,
    alerts by type and severity, open alerts and inspections by status, areas by loss class,
    sink and webhook outcomes."""
    labels = {
        f.name: set().union(*(set(s.labels) for s in f.samples)) if f.samples else set()
        for families in ours.values()
        for f in families
    }
    types = {f.name: f.type for families in ours.values() for f in families}
    assert {"result", "reason"} <= labels["amiwatch_ingest_readings"]
    assert "closed_by" in labels["amiwatch_ingest_frames_emitted"]  # closed_by="late": corrections
    assert "amiwatch_ingest_late_readings" in labels
    for lag in ("amiwatch_ingest_consumer_lag_messages", "amiwatch_detector_consumer_lag_messages", "amiwatch_api_sink_lag_records"):
        assert types[lag] == "gauge", lag
    for latency in ("amiwatch_ingest_batch_seconds", "amiwatch_detector_frame_seconds", "amiwatch_api_request_duration_seconds",
                    "amiwatch_api_sink_batch_seconds"):  # fmt: skip
        assert types[latency] == "histogram", latency
    assert types["amiwatch_detector_alerts"] == "counter"
    assert {"loss_class"} == labels["amiwatch_detector_areas_by_loss_class"]
    assert types["amiwatch_api_alerts"] == types["amiwatch_api_inspections"] == "gauge"
    assert {"result"} == labels["amiwatch_api_sink_records"]
    assert {"outcome"} == labels["amiwatch_api_webhook_deliveries"]


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_alerts_are_counted_by_type_severity_and_op_with_unknown_values_folded() -> None:
    catalogue = schemas.load("common")["$defs"]["anomaly_type"]["enum"]
    record = {"type": catalogue[0], "severity": "high", "op": "open"}
    labels = {"type": catalogue[0], "severity": "high", "op": "open"}
    before = _value("amiwatch_detector_alerts_total", **labels)
    detector_metrics.count_alert(record)
    assert _value("amiwatch_detector_alerts_total", **labels) == before + 1
    odd = {"type": "M123456789", "severity": "M123456789", "op": "M123456789"}  # an id must never become a label value
    before = _value("amiwatch_detector_alerts_total", type="other", severity="other", op="other")
    detector_metrics.count_alert(odd)
    assert _value("amiwatch_detector_alerts_total", type="other", severity="other", op="other") == before + 1
    values = {v for family in REGISTRY.collect() for sample in family.samples for v in sample.labels.values()}
    assert "M123456789" not in values


def _area(area_id: str, *open_types: str) -> AreaState:
    """A real area state with real open area alerts of ``open_types``."""
    th = load_thresholds()
    state = AreaState(area_id)
    findings = [Finding.of(th, t, area_id, area_id, 1_767_225_600, 0.9, {}, subject_kind="area") for t in open_types]
    state.alerts.apply(findings, th)
    return state


def test_loss_class_of_an_area_follows_its_open_area_alerts() -> None:
    metered, unmetered = SimpleNamespace(area_meter_id="AM-1"), SimpleNamespace(area_meter_id=None)
    assert detector_metrics.loss_class(_area("A1"), metered) == "compliant"
    assert detector_metrics.loss_class(_area("A1", "area_high_loss"), metered) == "high"
    assert detector_metrics.loss_class(_area("A1", "area_negative_loss"), metered) == "negative"
    assert detector_metrics.loss_class(_area("A1", "area_loss_uncomputable"), metered) == "uncomputable"
    assert detector_metrics.loss_class(_area("A1", "area_loss_uncomputable", "area_high_loss"), metered) == "high"
    assert detector_metrics.loss_class(_area("A1", "meter_stopped"), metered) == "compliant"  # only area alerts count
    assert detector_metrics.loss_class(_area("A1"), unmetered) == "no_area_meter"


def test_areas_by_loss_class_counts_each_area_once_and_forgets_revoked_partitions() -> None:
    metered = SimpleNamespace(area_meter_id="AM-1")

    def counts() -> dict[str, float]:
        return {c: _value("amiwatch_detector_areas_by_loss_class", loss_class=c) for c in detector_metrics.LOSS_CLASSES}

    base = counts()
    detector_metrics.observe_area(0, b"T-A1", _area("T-A1"), metered)
    detector_metrics.observe_area(0, b"T-A2", _area("T-A2", "area_high_loss"), metered)
    detector_metrics.observe_area(1, b"T-A3", _area("T-A3", "area_negative_loss"), metered)
    # the same area again, its loss now high: moved, not counted twice
    detector_metrics.observe_area(0, b"T-A1", _area("T-A1", "area_high_loss"), metered)
    delta = {c: counts()[c] - base[c] for c in base}
    assert delta == {"compliant": 0, "high": 2, "negative": 1, "uncomputable": 0, "no_area_meter": 0}
    detector_metrics.hold_partitions({1})  # partition 0 went to another worker
    delta = {c: counts()[c] - base[c] for c in base}
    assert delta == {"compliant": 0, "high": 0, "negative": 1, "uncomputable": 0, "no_area_meter": 0}
    detector_metrics.hold_partitions(set())
    assert counts() == base


def test_declared_label_names_are_bounded(tmp_path: Path) -> None:
    """Label names as declared, including metrics that have no series yet (no samples to look at)."""
    from services.api.metrics import ApiMetrics
    from services.ingest import metrics as ingest_metrics

    declared = [
        m
        for source in (vars(ingest_metrics), vars(detector_metrics), vars(ApiMetrics()))
        for m in source.values()
        if isinstance(m, MetricWrapperBase)
    ]
    assert len(declared) >= 20
    for metric in declared:
        assert set(metric._labelnames) <= BOUNDED_LABELS, (metric._name, metric._labelnames)
