"""The deploy bundle: ``deploy/docker-compose.yml`` validated by a real compose CLI, and checked for what it must run.

``docker compose config`` (or a ``docker-compose`` binary: the plugin is not
on every machine, and there is no Docker engine here to run the bundle)
validates the file against the Compose schema; a deliberately broken copy
must be rejected, so the check is known to bite. The structure checks read
the file with YAML anchors resolved: a three-broker KRaft cluster, ingest,
two detector workers of one consumer group, the API on PostgreSQL,
Prometheus scraping every service process, Grafana. The Dockerfile is
checked statically (no engine to build it): what it copies exists, is not
ignored, and is all the services need.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import yaml

from amiwatch.settings import REPO_ROOT
from tests.operations.promql import DEPLOY, PROMETHEUS_DIR

COMPOSE_FILE = DEPLOY / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"


def bundle() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())  # resolves the anchors and `<<` merges


def runs(service: dict[str, Any], command: str) -> bool:
    return bool(service.get("command")) and service["command"][0] == command and "amiwatch" in service.get("image", "")


def env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def compose_config(compose: list[str], path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*compose, "-f", str(path), "--project-directory", str(DEPLOY), "config", "-q"],
        capture_output=True, text=True, timeout=120, cwd=DEPLOY,
    )  # fmt: skip


# -- compose ------------------------------------------------------------------------------


def test_compose_config_validates_the_bundle(compose: list[str]) -> None:
    run = compose_config(compose, COMPOSE_FILE)
    assert run.returncode == 0, f"{' '.join(compose)} config: {run.stdout}{run.stderr}"


def test_compose_config_rejects_a_broken_bundle(compose: list[str], tmp_path: Path) -> None:
    """The validation is real: a dependency on a service that does not exist, or an unknown key, fails."""
    for breakage in (
        lambda d: d["services"]["ingest"].update(depends_on={"no-such-service": {"condition": "service_started"}}),
        lambda d: d["services"]["api"].update(prots=["8000:8000"]),
    ):
        data = bundle()
        breakage(data)
        broken = tmp_path / "docker-compose.yml"
        broken.write_text(yaml.safe_dump(data, sort_keys=False))
        run = compose_config(compose, broken)
        assert run.returncode != 0, f"{' '.join(compose)} accepted a broken bundle"


def test_kafka_is_a_three_broker_kraft_cluster() -> None:
    services = bundle()["services"]
    brokers = {name: env(s) for name, s in services.items() if s.get("image", "").startswith("apache/kafka")}
    assert len(brokers) == 3, sorted(brokers)
    voters = {e["KAFKA_CONTROLLER_QUORUM_VOTERS"] for e in brokers.values()}
    assert len(voters) == 1, "every broker must name the same controller quorum"
    quorum = dict(v.split("@") for v in voters.pop().split(","))
    assert sorted(quorum) == sorted(e["KAFKA_NODE_ID"] for e in brokers.values()), "one voter per broker, by node id"
    assert {hostport.split(":")[0] for hostport in quorum.values()} == set(brokers)
    assert len({e["CLUSTER_ID"] for e in brokers.values()}) == 1
    for name, e in brokers.items():
        assert set(e["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}, name
        assert e["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092", name
        assert int(e["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == 3 and int(e["KAFKA_MIN_INSYNC_REPLICAS"]) == 2, name
        assert int(e["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"]) == 3, name  # ingest is transactional
        assert e["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", name
    bootstrap = {f"{name}:9092" for name in brokers}
    for name, service in services.items():
        if "amiwatch" in service.get("image", ""):
            assert set(env(service)["KAFKA_BOOTSTRAP_SERVERS"].split(",")) == bootstrap, name


def test_services_ingest_two_detectors_in_one_group_and_the_api_on_postgres() -> None:
    services = bundle()["services"]
    topics = [n for n, s in services.items() if runs(s, "topics")]
    assert len(topics) == 1 and services[topics[0]]["command"] == ["topics", "create"]
    ingest = [s for s in services.values() if runs(s, "ingest")]
    assert len(ingest) >= 1
    workers = [s["command"][s["command"].index("--worker") + 1] for s in ingest]
    assert len(set(workers)) == len(workers), "each ingest worker needs a stable, unique --worker"
    detectors = {n: env(s) for n, s in services.items() if runs(s, "detect")}
    assert len(detectors) >= 2, sorted(detectors)
    assert len({e["AMIWATCH_TOPIC_PREFIX"] for e in detectors.values()}) == 1, "one consumer group (app id <prefix>detector)"
    assert len({e["AMIWATCH_DETECTOR_WORKER"] for e in detectors.values()}) == len(detectors)
    assert all(int(e["AMIWATCH_DETECTOR_STANDBYS"]) >= 1 for e in detectors.values())
    assert all(e["AMIWATCH_DETECTOR_STORE"] == "rocksdb://" for e in detectors.values())
    partitions = {int(env(s)["AMIWATCH_PARTITIONS"]) for s in services.values() if "amiwatch" in s.get("image", "")}
    assert len(partitions) == 1 and partitions.pop() >= len(detectors), "one partition count, at least one partition per worker"
    for name, service in services.items():
        if any(runs(service, c) for c in ("ingest", "detect", "api", "simulate")):
            assert topics[0] in service["depends_on"], f"{name} must wait for the topics"
    api = [s for s in services.values() if runs(s, "api")]
    assert len(api) == 1 and api[0]["command"][:2] == ["api", "serve"]
    url = env(api[0])["AMIWATCH_DATABASE_URL"]
    host = re.match(r"postgresql\+psycopg://[^@]+@([^:/]+)", url)
    assert host and services[host.group(1)]["image"].startswith("postgres:"), url
    assert api[0]["depends_on"][host.group(1)]["condition"] == "service_healthy"
    assert "prometheus" in services and "grafana" in services


def _port(service: dict[str, Any], variable: str, default: int) -> int:
    return int(env(service).get(variable, default))


def test_prometheus_scrapes_every_service_process_of_the_bundle() -> None:
    """Each target is a compose service on its metrics port, and every service process is a target."""
    services = bundle()["services"]
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: {t for sc in job["static_configs"] for t in sc["targets"]}
        for job in config["scrape_configs"]
    }
    expected = {"amiwatch-ingest": set(), "amiwatch-detector": set(), "amiwatch-api": set()}
    for name, service in services.items():
        if runs(service, "ingest"):
            expected["amiwatch-ingest"].add(f"{name}:{_port(service, 'AMIWATCH_INGEST_METRICS_PORT', 9101)}")
        elif runs(service, "detect"):
            expected["amiwatch-detector"].add(f"{name}:{_port(service, 'AMIWATCH_DETECTOR_METRICS_PORT', 9102)}")
        elif runs(service, "api"):
            command = service["command"]
            port = int(command[command.index("--port") + 1]) if "--port" in command else _port(service, "AMIWATCH_API_PORT", 8000)
            expected["amiwatch-api"].add(f"{name}:{port}")
    for job, wanted in expected.items():
        assert targets[job] == wanted, job


def test_prometheus_and_grafana_read_the_shipped_files() -> None:
    services = bundle()["services"]
    prometheus = services["prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert "./prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in services["grafana"]["volumes"]
    for volume in (v for s in services.values() for v in s.get("volumes", ()) if v.startswith("./")):
        assert (DEPLOY / volume.split(":")[0]).exists(), volume


# -- Dockerfile ---------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def ignored(path: str) -> bool:
    """Whether ``.dockerignore`` excludes ``path`` (its patterns: names, globs, ``**/``; no ``!`` exceptions)."""
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]
    assert not any(p.startswith("!") for p in patterns), "exceptions are not handled here"
    parts = Path(path).parts
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatch(part, pattern[3:]) for part in parts):
                return True
        elif any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            return True
    return False


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def test_dockerfile_copies_what_the_package_needs_and_nothing_ignored() -> None:
    steps = instructions()
    images = [rest.split()[0] for word, rest in steps if word == "FROM"]
    assert images and all(re.fullmatch(r"python:3\.11(-[a-z0-9.-]+)?", image) for image in images), images
    assert ">=3.11" in pyproject()["project"]["requires-python"]
    copied = []
    for word, rest in steps:
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _dest = rest.split()
            copied += [s.rstrip("/") for s in sources]
    for source in copied:
        assert (REPO_ROOT / source).exists(), f"COPY {source}: no such file"
        assert not ignored(source), f"COPY {source}: excluded by .dockerignore"
    includes = pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.name for p in REPO_ROOT.iterdir() if (p / "__init__.py").exists() and any(fnmatch.fnmatch(p.name, i) for i in includes)}
    assert packages and packages <= set(copied), f"packages not copied into the image: {packages - set(copied)}"
    assert {"pyproject.toml", "README.md"} <= set(copied)  # the build reads both
    for noise in ("var", ".venv", ".git", "tests", "services/api/__pycache__/x.pyc"):
        assert ignored(noise), f".dockerignore should exclude {noise}"


def test_image_runs_the_amiwatch_command_on_the_bundles_ports() -> None:
    steps_all = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps_all) if word == "FROM")
    steps = dict(steps_all[last_from:])  # the runtime stage; the last of each instruction wins
    entrypoint = yaml.safe_load(steps["ENTRYPOINT"])
    assert entrypoint[-1] == "amiwatch" and "amiwatch" in pyproject()["project"]["scripts"]
    exposed = set(map(int, steps["EXPOSE"].split()))
    assert {8000, 9101, 9102} <= exposed
    assert "AMIWATCH_STATE_DIR=/var/lib/amiwatch" in steps["ENV"]
    assert steps["USER"] != "root"


def test_non_python_files_the_services_read_are_packaged() -> None:
    """The image installs the project (not editable): every data file must be package data."""
    data = pyproject()["tool"]["setuptools"]["package-data"]
    not_needed_at_run_time = {"README.md", "script.py.mako"}  # docs; Alembic's template for *new* revisions
    tracked = subprocess.run(
        ["git", "ls-files", "amiwatch", "services", "simulators", "schemas"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for path in tracked:
        if path.endswith(".py") or Path(path).name in not_needed_at_run_time:
            continue
        top = path.split("/")[0]
        relative_to_top = path.split("/", 1)[1]
        patterns_top = data.get(top, [])
        package, _, name = path.rpartition("/")
        covered = any(fnmatch.fnmatch(relative_to_top, p) for p in patterns_top) or any(
            fnmatch.fnmatch(name, p) for p in data.get("*", ())
        )
        assert covered, f"{path} is not package data: the image would not have it (package {package.replace('/', '.')})"
