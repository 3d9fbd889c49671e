"""``deploy/prometheus``: promtool checks the configuration and the rules, and runs the rules' unit tests.

The unit tests (``deploy/prometheus/tests/amiwatch.rules.test.yml``) must
prove each alert both ways: this module checks that every alert has a check
where it fires and a check, past its ``for`` duration, where it must stay
quiet, and that the checks have teeth: with every alert made to never fire,
or to always fire, ``promtool test rules`` fails on every alert.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.operations.promql import PROMETHEUS_DIR, RULES_FILE, RULES_TEST_FILE, alert_names

CONFIG = PROMETHEUS_DIR / "prometheus.yml"
JOBS = {"amiwatch-ingest", "amiwatch-detector", "amiwatch-api"}


def promtool_run(promtool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *map(str, args)], capture_output=True, text=True, timeout=120)


def seconds(duration: str) -> float:
    """A Prometheus duration (``90s``, ``15m``, ``1h30m``) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


def test_promtool_check_config(promtool: str) -> None:
    run = promtool_run(promtool, "check", "config", CONFIG)
    assert run.returncode == 0, run.stdout + run.stderr
    # The rule glob loads the rules file, not the unit tests beside it.
    assert "SUCCESS: 1 rule files found" in run.stdout + run.stderr, run.stdout + run.stderr


def test_config_scrapes_every_service_and_loads_the_rules() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert JOBS <= jobs
    rule_files = sorted(p for pattern in config["rule_files"] for p in CONFIG.parent.glob(pattern))
    assert rule_files == [RULES_FILE]
    # The rules speak of exactly these jobs.
    assert 'up{job=~"amiwatch-.+"}' in RULES_FILE.read_text()


def test_promtool_check_rules(promtool: str) -> None:
    run = promtool_run(promtool, "check", "rules", RULES_FILE)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout, run.stdout


def test_promtool_test_rules(promtool: str) -> None:
    run = promtool_run(promtool, "test", "rules", RULES_TEST_FILE)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout, run.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    rules = {
        rule["alert"]: rule
        for group in yaml.safe_load(RULES_FILE.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    checks = [
        check
        for test in yaml.safe_load(RULES_TEST_FILE.read_text())["tests"]
        for check in test.get("alert_rule_test", ())
    ]
    unknown = {c["alertname"] for c in checks} - set(rules)
    assert not unknown, f"checks of alerts that do not exist (they would pass vacuously): {unknown}"
    for name, rule in rules.items():
        mine = [c for c in checks if c["alertname"] == name]
        assert any(c.get("exp_alerts") for c in mine), f"{name}: no check where it fires"
        hold = seconds(rule.get("for", "0s"))
        assert any(not c.get("exp_alerts") and seconds(c["eval_time"]) >= hold for c in mine), (
            f"{name}: no check, past its `for` of {rule.get('for', '0s')}, where it must stay quiet"
        )


def _mutated(tmp_path: Path, expr: str) -> Path:
    """A copy of the rules with every alert's expression replaced by ``expr``, and the unit tests beside it."""
    data = yaml.safe_load(RULES_FILE.read_text())
    for group in data["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["expr"] = expr
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "rules" / RULES_FILE.name).write_text(yaml.safe_dump(data, sort_keys=False))
    shutil.copy(RULES_TEST_FILE, tmp_path / "tests" / RULES_TEST_FILE.name)
    return tmp_path / "tests" / RULES_TEST_FILE.name


def test_unit_tests_fail_when_no_alert_ever_fires(promtool: str, tmp_path: Path) -> None:
    run = promtool_run(promtool, "test", "rules", _mutated(tmp_path, "vector(1) < 0"))
    assert run.returncode != 0, run.stdout
    failed = set(re.findall(r"alertname: (\w+)", run.stdout + run.stderr))
    assert failed == set(alert_names()), f"no failing firing check for {set(alert_names()) - failed}"


def test_unit_tests_fail_when_every_alert_always_fires(promtool: str, tmp_path: Path) -> None:
    run = promtool_run(promtool, "test", "rules", _mutated(tmp_path, "vector(1)"))
    assert run.returncode != 0, run.stdout
    failed = set(re.findall(r"alertname: (\w+)", run.stdout + run.stderr))
    assert failed == set(alert_names()), f"no failing quiet check for {set(alert_names()) - failed}"
