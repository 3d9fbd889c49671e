"""The services under test, as subprocesses: ``python -m amiwatch.cli ingest|detect|api serve``.

Each runs as ``amiwatch up`` starts it, with an environment that points it
at the run's broker and topic prefix, free ports of its own and a state
directory of its own, and writes its output to ``<name>.log`` in that
directory (the log is where a failure is explained). The bench stops a
service itself (SIGTERM, then SIGKILL after a timeout) once it has what it
measures, reading the service's peak RSS just before.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from amiwatch.bench.rss import PeakRss
from amiwatch.ports import free_ports

__all__ = ["free_ports", "ServiceEnv", "Service", "BenchError"]

AMIWATCH = [sys.executable, "-m", "amiwatch.cli"]


class BenchError(RuntimeError):
    """A phase could not be measured (a service died, or did not finish in time)."""


@dataclass(frozen=True, slots=True)
class ServiceEnv:
    """Where one phase's services run: broker, topic prefix, partitions, state directory, ports."""

    bootstrap: str
    prefix: str
    partitions: int
    state_dir: Path
    ingest_metrics_port: int = field(default_factory=lambda: free_ports(1)[0])
    detector_metrics_port: int = field(default_factory=lambda: free_ports(1)[0])
    detector_web_port: int = field(default_factory=lambda: free_ports(1)[0])
    api_port: int = field(default_factory=lambda: free_ports(1)[0])

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.state_dir / 'api.db'}"

    def environ(self) -> dict[str, str]:
        """``os.environ`` plus the settings of this phase (the broker counts as external: none is started)."""
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "AMIWATCH_TOPIC_PREFIX": self.prefix,
            "AMIWATCH_PARTITIONS": str(self.partitions),
            "AMIWATCH_STATE_DIR": str(self.state_dir),
            "AMIWATCH_INGEST_METRICS_PORT": str(self.ingest_metrics_port),
            "AMIWATCH_DETECTOR_METRICS_PORT": str(self.detector_metrics_port),
            "AMIWATCH_DETECTOR_WEB_PORT": str(self.detector_web_port),
            "AMIWATCH_API_PORT": str(self.api_port),
            "AMIWATCH_DATABASE_URL": self.database_url,
        }

    def metrics_url(self, service: str) -> str:
        port = {"ingest": self.ingest_metrics_port, "detector": self.detector_metrics_port, "api": self.api_port}[service]
        return f"http://127.0.0.1:{port}/metrics"

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


class Service:
    """One service subprocess, its log file and its peak RSS."""

    def __init__(self, name: str, args: list[str], env: ServiceEnv) -> None:
        self.name = name
        self.argv = [*AMIWATCH, *args]
        self.env = env
        self.log = env.state_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.rss: PeakRss | None = None

    def start(self) -> Service:
        self.env.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.argv, env=self.env.environ(), stdout=log, stderr=subprocess.STDOUT)
        self.rss = PeakRss(self.process.pid)
        return self

    def sample(self) -> None:
        """Read the peak RSS now; raise :class:`BenchError` if the service has died."""
        assert self.process is not None and self.rss is not None
        self.rss.sample()
        if self.process.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.process.returncode}; see {self.log}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_contains(self, text: str) -> bool:
        try:
            return text in self.log.read_text(errors="replace")
        except OSError:
            return False

    @property
    def peak_rss(self) -> int:
        return self.rss.bytes if self.rss else 0

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (the service's clean path), SIGKILL after ``timeout``.

        The peak RSS is read until the process is gone: a clean stop does work of its own (the
        detector writes every live state it holds) and may be where the peak is.
        """
        if self.process is None or self.process.poll() is not None:
            return
        assert self.rss is not None
        self.rss.sample()
        self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            self.rss.sample()  # VmHWM only grows: the last sample before the exit holds the peak
            if time.monotonic() > deadline:
                self.process.kill()
                self.process.wait()
                return
            time.sleep(0.05)

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float) -> None:
        """Wait until ``ready()`` is true, checking that the service lives; :class:`BenchError` on timeout."""
        deadline = time.monotonic() + timeout
        while not ready():
            self.sample()
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name}: not {what} after {timeout:.0f} s; see {self.log}:\n{self.log_tail()}")
            time.sleep(0.2)
