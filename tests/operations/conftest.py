"""Tools of the operations tests: promtool and the Prometheus server (Debian's ``prometheus``), and a compose CLI.

Like PostgreSQL for the store tests (``deploy/postgres/pgctl.sh``), a missing
Prometheus is installed from Debian when the tests run as root (``.ci/run``
installs it up front); if it still cannot be found, the tests that need it
FAIL: the issue requires promtool and a real server in ``make test``.

The compose check takes ``docker compose`` (the plugin) when it works, else
a ``docker-compose`` binary (v2 standalone or Debian's v1), else installs
Debian's ``docker-compose`` as root (``.ci/run`` installs it too). Where
none can be had the check fails, with the reason: a skipped check is not a
passing one.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from amiwatch.settings import REPO_ROOT

_LOCK = REPO_ROOT / "var" / "operations-apt.lock"


@contextmanager
def _apt_lock() -> Iterator[None]:
    """Serialise installs between pytest sessions sharing this machine (dpkg takes one at a time)."""
    _LOCK.parent.mkdir(parents=True, exist_ok=True)
    with _LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def install_debian_package(package: str, *binaries: str) -> str:
    """Install ``package`` from Debian (as root, without recommends) unless ``binaries`` exist; returns why not, or ''."""
    if all(shutil.which(b) for b in binaries):
        return ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"{', '.join(binaries)} not found, and not root with apt-get to install Debian's {package}"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with _apt_lock():
        if all(shutil.which(b) for b in binaries):
            return ""
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        run = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
            env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    if all(shutil.which(b) for b in binaries):
        return ""
    return f"apt-get install {package} failed (exit {run.returncode}): {run.stderr[-1500:]}"


@pytest.fixture(scope="session")
def prometheus_tools() -> dict[str, str]:
    """Paths of ``promtool`` and ``prometheus`` (Debian's package), installed if missing."""
    problem = install_debian_package("prometheus", "promtool", "prometheus")
    if problem:
        pytest.fail(f"Prometheus tools unavailable: {problem}", pytrace=False)
    return {"promtool": shutil.which("promtool") or "", "prometheus": shutil.which("prometheus") or ""}


@pytest.fixture(scope="session")
def promtool(prometheus_tools: dict[str, str]) -> str:
    return prometheus_tools["promtool"]


def _works(command: list[str]) -> bool:
    try:
        return subprocess.run([*command, "version"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_compose() -> list[str] | None:
    """The compose CLI to use: the docker plugin, else a docker-compose binary."""
    if shutil.which("docker") and _works(["docker", "compose"]):
        return ["docker", "compose"]
    if shutil.which("docker-compose") and _works(["docker-compose"]):
        return ["docker-compose"]
    return None


@pytest.fixture(scope="session")
def compose() -> list[str]:
    """A compose CLI (see the module docstring); the test fails, saying why, if none can be had."""
    command = find_compose()
    if command is None:
        problem = install_debian_package("docker-compose", "docker-compose")
        command = find_compose()
        if command is None:
            pytest.fail(f"no compose CLI: no `docker compose` plugin, no docker-compose binary ({problem or 'it does not run'})")
    return command
