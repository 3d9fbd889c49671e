"""Prometheus metrics of the API service (``/metrics``).

Each app gets its own registry (tests create many apps in one process).
Names carry the namespace and unit; label values are bounded sets (route
templates, never alert or meter ids).

- ``amiwatch_api_request_duration_seconds{method,route}``: histogram of request durations
- ``amiwatch_api_requests_total{method,route,status}``
- ``amiwatch_api_alerts{type,status}``: alerts in the store (read from the database at scrape)
- ``amiwatch_api_inspections{status}``: inspections in the store (at scrape)
- ``amiwatch_api_sink_records_total{result}``: alert records consumed (opened, changed, unchanged, replayed, invalid)
- ``amiwatch_api_sink_lag_records``: records on ``ami.alerts`` not yet consumed by the sink
- ``amiwatch_api_sink_batch_seconds``: histogram of one batch's apply-and-commit time
- ``amiwatch_api_webhook_deliveries_total{outcome}``: delivered, retry (failed, will retry), dead (gave up)
- ``amiwatch_api_webhook_outbox{state}``: outbox messages by state (at scrape)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from services.api.store.models import Alert, Inspection, OutboxMessage
from services.api.store.session import Store

__all__ = ["ApiMetrics"]

log = logging.getLogger(__name__)


class _StoreCollector(Collector):
    """Counts read from the database when Prometheus scrapes (always current, no double bookkeeping)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        alerts = GaugeMetricFamily("amiwatch_api_alerts", "Alerts in the store by type and status", labels=["type", "status"])
        inspections = GaugeMetricFamily("amiwatch_api_inspections", "Inspections in the store by status", labels=["status"])
        outbox = GaugeMetricFamily("amiwatch_api_webhook_outbox", "Webhook outbox messages by state", labels=["state"])
        try:
            with self.store.read() as s:
                for type_, status, n in s.execute(select(Alert.type, Alert.status, func.count()).group_by(Alert.type, Alert.status)):
                    alerts.add_metric([type_, status], n)
                for status, n in s.execute(select(Inspection.status, func.count()).group_by(Inspection.status)):
                    inspections.add_metric([status], n)
                for state, n in s.execute(select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)):
                    outbox.add_metric([state], n)
        except Exception:  # a scrape must not fail because the database is down; /readyz says so
            log.warning("metrics: store counts unavailable", exc_info=True)
        yield alerts
        yield inspections
        yield outbox


class ApiMetrics:
    """The API's metrics in a registry of their own."""

    def __init__(self, store: Store | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.request_seconds = Histogram(
            "amiwatch_api_request_duration_seconds", "HTTP request duration by route template",
            ["method", "route"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )  # fmt: skip
        self.requests = Counter("amiwatch_api_requests", "HTTP requests by route template and status", ["method", "route", "status"], registry=r)
        self.sink_records = Counter("amiwatch_api_sink_records", "Alert records consumed by the sink, by result", ["result"], registry=r)
        self.sink_lag = Gauge("amiwatch_api_sink_lag_records", "Alert records on the topic not yet consumed by the sink", registry=r)
        self.sink_batch_seconds = Histogram("amiwatch_api_sink_batch_seconds", "Time to apply and commit one batch of alert records", registry=r)
        self.webhook_deliveries = Counter("amiwatch_api_webhook_deliveries", "Webhook delivery attempts by outcome", ["outcome"], registry=r)
        for outcome in ("delivered", "retry", "dead"):
            self.webhook_deliveries.labels(outcome)
        for result in ("opened", "changed", "unchanged", "replayed", "invalid"):
            self.sink_records.labels(result)
        if store is not None:
            r.register(_StoreCollector(store))

    def render(self) -> bytes:
        return generate_latest(self.registry)
