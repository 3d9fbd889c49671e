"""The local Kafka broker, or the external cluster named by ``KAFKA_BOOTSTRAP_SERVERS``.

``deploy/kafka/kafkactl.sh`` does the work (the README's command too), so
``amiwatch kafka ...``, ``amiwatch up`` and the test fixtures all start the
very same broker; this module only hands the settings to it as environment.
With an external cluster nothing is started or stopped here: the cluster is
someone else's, and status only checks that it answers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from contextlib import closing

from kafka.admin import KafkaAdminClient

from amiwatch.settings import REPO_ROOT, Settings, load_settings

__all__ = [
    "KAFKACTL",
    "BrokerError",
    "kafkactl_env",
    "start_local_broker",
    "stop_local_broker",
    "broker_running",
    "broker_reachable",
    "register",
]

KAFKACTL = REPO_ROOT / "deploy" / "kafka" / "kafkactl.sh"
_NOT_RUNNING = 3  # kafkactl.sh status's exit code when no broker runs


class BrokerError(RuntimeError):
    """The local broker could not be started or stopped (the message holds kafkactl's output)."""


def kafkactl_env(settings: Settings) -> dict[str, str]:
    """The variables through which kafkactl.sh gets the settings (merge into an environment)."""
    return {
        "AMIWATCH_KAFKA_VERSION": settings.kafka_version,
        "AMIWATCH_KAFKA_HOME": str(settings.kafka_home),
        "AMIWATCH_STATE_DIR": str(settings.state_dir),
        "AMIWATCH_KAFKA_PORT": str(settings.kafka_port),
        "AMIWATCH_KAFKA_CONTROLLER_PORT": str(settings.kafka_controller_port),
        "AMIWATCH_KAFKA_HEAP": settings.kafka_heap,
        # The readiness probe needs kafka-python: this interpreter has it.
        "AMIWATCH_PYTHON": sys.executable,
    }


def _kafkactl(settings: Settings, action: str, *, capture: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``kafkactl.sh action``; with ``capture=False`` its output goes to the terminal."""
    pipe = subprocess.PIPE if capture else None
    env = {**os.environ, **kafkactl_env(settings)}
    return subprocess.run(["bash", str(KAFKACTL), action], env=env, stdout=pipe, stderr=pipe, text=True)


def _checked(settings: Settings, action: str) -> str:
    """Run ``kafkactl.sh action``: its notes go on to stderr, its answer (stdout) is returned."""
    result = _kafkactl(settings, action)
    if result.returncode != 0:
        raise BrokerError(f"kafkactl.sh {action} failed:\n{result.stderr.strip()}")
    sys.stderr.write(result.stderr)
    return result.stdout.strip()


def start_local_broker(settings: Settings) -> str:
    """Start the local broker unless it runs; return the bootstrap servers.

    With an external cluster, start nothing and return its bootstrap servers.
    Raises :class:`BrokerError` (with the broker's log tail) if it fails.
    """
    if settings.external_kafka:
        return settings.bootstrap_servers
    return _checked(settings, "start")


def stop_local_broker(settings: Settings) -> None:
    """Stop the local broker if it runs (never an external cluster)."""
    if not settings.external_kafka:
        _checked(settings, "stop")


def broker_reachable(bootstrap_servers: str, timeout_s: float = 5.0) -> bool:
    """Whether a broker at ``bootstrap_servers`` answers a metadata request in time."""
    timeout_ms = int(timeout_s * 1000)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap_servers, request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms
        )
    except Exception:  # kafka-python raises several kinds when nothing answers
        return False
    with closing(admin):
        try:
            return bool(admin.describe_cluster()["brokers"])
        except Exception:
            return False


def broker_running(settings: Settings) -> bool:
    """Whether the broker is up: the local process, or the external cluster answering."""
    if settings.external_kafka:
        return broker_reachable(settings.bootstrap_servers)
    return _kafkactl(settings, "status").returncode == 0


def _main(args: argparse.Namespace) -> int:
    settings = load_settings()
    if not settings.external_kafka:
        return _kafkactl(settings, args.action, capture=False).returncode
    where = f"the external Kafka cluster at {settings.bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS)"
    if args.action != "status":
        print(f"using {where}: nothing to {args.action}")
        return 0
    if broker_reachable(settings.bootstrap_servers):
        print(settings.bootstrap_servers)
        return 0
    print(f"{where} does not answer", file=sys.stderr)
    return _NOT_RUNNING


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``amiwatch kafka start|stop|status``."""
    parser = subparsers.add_parser("kafka", help="start, stop or check the local Kafka broker")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_ in (
        ("start", "start the local broker (fetching Kafka on first use) and wait until it answers"),
        ("stop", "stop the local broker cleanly"),
        ("status", "print the bootstrap servers and exit 0 if the broker is up, else exit 3"),
    ):
        actions.add_parser(name, help=help_).set_defaults(func=_main)
