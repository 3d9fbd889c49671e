"""What the operations tests need to read: metric names in PromQL, the names the services export, the shipped files.

:func:`metric_names` finds the metric names an expression selects. It is a
tokenizer, not a parser: it relies on the expression being valid PromQL,
which the tests prove separately with ``promtool`` (rule files) and a real
Prometheus (dashboard queries).

:func:`exported_names` reads the services' registries as their processes
build them: ingest's and the detector's module-level metrics in the default
registry, and the API's :class:`~services.api.metrics.ApiMetrics` registry
with its store collector. A family's sample names follow from its type
(``_total`` for counters, ``_bucket``/``_count``/``_sum`` for histograms, ...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import Metric

from amiwatch.settings import REPO_ROOT

__all__ = [
    "DEPLOY",
    "PROMETHEUS_DIR",
    "RULES_FILE",
    "RULES_TEST_FILE",
    "DASHBOARD_FILE",
    "metric_names",
    "grafana_to_promql",
    "dashboard_queries",
    "rule_expressions",
    "recorded_names",
    "alert_names",
    "families",
    "sample_names",
    "exported_families",
    "exported_names",
]

DEPLOY = REPO_ROOT / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
RULES_FILE = PROMETHEUS_DIR / "rules" / "amiwatch.rules.yml"
RULES_TEST_FILE = PROMETHEUS_DIR / "tests" / "amiwatch.rules.test.yml"
DASHBOARD_FILE = DEPLOY / "grafana" / "dashboards" / "amiwatch.json"

# PromQL words that look like identifiers but never name a metric.
_KEYWORDS = frozenset(
    {
        "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
        "offset", "atan2", "inf", "nan",
        # aggregation operators (they may be followed by `by (...)` instead of `(`)
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
        "bottomk", "topk", "quantile", "limitk", "limit_ratio",
    }
)  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE)
_OFFSET = re.compile(r"\boffset\s+-?[0-9a-z]+", re.IGNORECASE)
_IDENT = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")

# Grafana's built-in variables, with values that make a query plain PromQL.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def metric_names(expr: str) -> set[str]:
    """Metric names selected by the PromQL ``expr`` (``{__name__="x"}`` included)."""
    names = set(re.findall(r'__name__\s*=\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"', expr))
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    for match in _IDENT.finditer(text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _KEYWORDS:
            continue  # a function call or a keyword
        names.add(word)
    return names


def grafana_to_promql(expr: str) -> str:
    """A Grafana query with its built-in variables replaced by values (anything else ``$`` is an error)."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    if "$" in expr:
        raise ValueError(f"unknown Grafana variable in {expr!r}")
    return expr


def _panels(panels: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", ()))  # rows may nest panels


def dashboard_queries(path: Path = DASHBOARD_FILE) -> list[tuple[str, str]]:
    """``(panel title, expr)`` of every Prometheus query of the dashboard."""
    dashboard = json.loads(path.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in _panels(dashboard["panels"])
        for target in panel.get("targets", ())
        if "expr" in target
    ]


def _rules(path: Path = RULES_FILE) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def rule_expressions(path: Path = RULES_FILE) -> list[tuple[str, str]]:
    """``(alert or record name, expr)`` of every rule."""
    return [(rule.get("alert") or rule["record"], rule["expr"]) for rule in _rules(path)]


def recorded_names(path: Path = RULES_FILE) -> set[str]:
    return {rule["record"] for rule in _rules(path) if "record" in rule}


def alert_names(path: Path = RULES_FILE) -> list[str]:
    return [rule["alert"] for rule in _rules(path) if "alert" in rule]


def families(registry: CollectorRegistry) -> list[Metric]:
    return list(registry.collect())


def sample_names(family: Metric) -> set[str]:
    """Every sample name a family can expose, whether or not it has samples yet."""
    name = family.name
    by_type = {
        "counter": {f"{name}_total", f"{name}_created"},
        "histogram": {f"{name}_bucket", f"{name}_count", f"{name}_sum", f"{name}_created"},
        "summary": {name, f"{name}_count", f"{name}_sum", f"{name}_created"},
        "gaugehistogram": {f"{name}_bucket", f"{name}_gcount", f"{name}_gsum"},
        "info": {f"{name}_info"},
    }
    return by_type.get(family.type, {name}) | {s.name for s in family.samples}


def exported_families(tmp_path: Path) -> dict[str, list[Metric]]:
    """The metric families each service's /metrics serves, by service (``ingest``, ``detector``, ``api``)."""
    import services.detector.metrics  # noqa: F401  (registers the detector's metrics)
    import services.ingest.metrics  # noqa: F401  (registers ingest's metrics)
    from services.api.metrics import ApiMetrics
    from services.api.store.migrate import upgrade
    from services.api.store.session import Store

    store = Store(f"sqlite:///{tmp_path / 'metrics.db'}")
    try:
        upgrade(store)
        api = families(ApiMetrics(store).registry)
    finally:
        store.dispose()
    default = families(REGISTRY)
    return {
        # Ingest and the detector serve the whole default registry of their process:
        # their own families plus prometheus-client's process and platform collectors.
        "ingest": [f for f in default if not f.name.startswith("amiwatch_") or f.name.startswith("amiwatch_ingest_")],
        "detector": [f for f in default if not f.name.startswith("amiwatch_") or f.name.startswith("amiwatch_detector_")],
        "api": api,
    }


def exported_names(tmp_path: Path) -> set[str]:
    """Every sample name any service exports."""
    return {name for fams in exported_families(tmp_path).values() for f in fams for name in sample_names(f)}
