"""Fixtures every test shares: a real Kafka broker, fresh topics, and an environment for subprocesses.

The broker is the one the README starts (``deploy/kafka/kafkactl.sh``,
through :mod:`amiwatch.kafka.local_broker`), never a fake. It runs on free
ports of its own with its state in ``var/test-kafka/session-<pid>/``, so a
developer's broker (``var/kafka``, port 19092) and a test session running
at the same time in the same tree are left alone; stale session dirs are
stopped and wiped when a session starts, and the last one stays for a
post-mortem look at its ``kafka/kafka.log``. With ``KAFKA_BOOTSTRAP_SERVERS``
set, that cluster is used and nothing is started.

A broker that cannot start errors the tests that need it: they are never
skipped. Every test that uses these fixtures gets the ``kafka`` marker.
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

# kafka-python 3.0 loads its protocol schemas, on import, through
# importlib.resources calls deprecated since 3.11: 200 warnings, none ours.
warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)

from amiwatch.kafka.local_broker import start_local_broker, stop_local_broker  # noqa: E402
from amiwatch.kafka.topics import ensure_topics  # noqa: E402
from amiwatch.ports import free_ports  # noqa: E402,F401  (the tests import it from here)
from amiwatch.settings import REPO_ROOT, Settings, Topics, load_settings  # noqa: E402

TEST_STATE_ROOT = REPO_ROOT / "var" / "test-kafka"
TEST_PARTITIONS = 4
_KAFKA_FIXTURES = {"kafka_bootstrap", "kafka_topics", "kafka_env"}


def local_broker_settings(state_dir: Path, heap: str = "512m") -> Settings:
    """Settings for a local broker of its own: ``state_dir``, free ports, no external cluster."""
    port, controller_port = free_ports(2)
    return replace(
        load_settings(),
        bootstrap_servers=f"127.0.0.1:{port}",
        external_kafka=False,
        kafka_port=port,
        kafka_controller_port=controller_port,
        kafka_heap=heap,
        state_dir=state_dir,
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, and someone else's
    return True


def wipe_stale_sessions(root: Path, stop: Callable[[Path], object]) -> None:
    """Stop (with ``stop``) and delete every ``session-<pid>`` dir under ``root`` whose pytest is gone.

    Several pytest runs may share this tree, so each keeps its servers in a dir
    named after its pid; a dir whose owner has died is left-over.
    """
    if not root.is_dir():
        return
    for session in root.iterdir():
        owner = session.name.removeprefix("session-")
        if owner.isdigit() and _pid_alive(int(owner)):
            continue
        stop(session)
        shutil.rmtree(session, ignore_errors=True)


def _wipe_stale_sessions() -> None:
    """Stop the broker of, and delete, every session dir whose pytest is gone."""
    wipe_stale_sessions(
        TEST_STATE_ROOT, lambda session: stop_local_broker(replace(load_settings(), external_kafka=False, state_dir=session))
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a Kafka fixture ``kafka``, so ``-m "not kafka"`` works."""
    for item in items:
        if _KAFKA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a running Kafka: ``KAFKA_BOOTSTRAP_SERVERS``, else a session broker."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        yield external
        return
    _wipe_stale_sessions()
    settings = local_broker_settings(TEST_STATE_ROOT / f"session-{os.getpid()}")
    bootstrap = start_local_broker(settings)  # BrokerError (with the log tail) fails loudly
    try:
        yield bootstrap
    finally:
        stop_local_broker(settings)


@pytest.fixture
def kafka_topics(kafka_bootstrap: str) -> Topics:
    """The project's topics under a fresh prefix (``t<uuid8>.``), created with 4 partitions each."""
    topics = Topics(prefix=f"t{uuid.uuid4().hex[:8]}.")
    ensure_topics(kafka_bootstrap, topics, TEST_PARTITIONS)
    return topics


@pytest.fixture
def kafka_env(kafka_bootstrap: str, kafka_topics: Topics, tmp_path: Path) -> dict[str, str]:
    """The environment for a subprocess (``os.environ`` plus these) that uses this test's topics.

    ``KAFKA_BOOTSTRAP_SERVERS`` makes the subprocess treat the broker as an
    external cluster, so it never starts one of its own.
    """
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "AMIWATCH_TOPIC_PREFIX": kafka_topics.prefix,
        "AMIWATCH_PARTITIONS": str(TEST_PARTITIONS),
        "AMIWATCH_STATE_DIR": str(state_dir),
    }
