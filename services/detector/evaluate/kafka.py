"""``amiwatch evaluate --via-kafka``: the scenario through the real broker and the real services.

The simulator publishes the run (archives, raw readings, labels) with its
Kafka sink; then ``amiwatch ingest --exit-when-idle`` and ``amiwatch detect
--exit-when-idle`` run as subprocesses, one after the other (each drains
its whole input, flushes, commits and exits); then the alerts and dead
letters are read back from their topics. The labels are not read back: the
simulator's in-process copy is the same list it published.

Every run gets topics of its own (``<prefix>eval-<uuid8>.``, created here
and deleted afterwards), so neither an earlier run nor a service running
on the developer's topics can mix into the result. The services get that
prefix and a state directory of their own through their environment
(which is how they are configured anyway), no metrics port and a free
web port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack, closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient

from amiwatch.kafka.clients import sync_consumer
from amiwatch.kafka.local_broker import start_local_broker
from amiwatch.kafka.topics import ensure_topics
from amiwatch.settings import Settings, Topics, load_settings
from simulators.generate import Simulation
from simulators.sinks import KafkaSink

__all__ = ["KafkaRun", "run_via_kafka"]

IDLE_S = 5.0
"""Seconds each service waits at the end of its input before it flushes and exits."""


@dataclass(slots=True)
class KafkaRun:
    """What came back from the broker, and how long each stage took."""

    records: list[dict[str, Any]]
    rejected: dict[str, int]
    timings_s: dict[str, float]


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read_topic(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record of ``topic`` from its beginning to its current end, decoded, in partition order."""
    consumer = sync_consumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            raise RuntimeError(f"topic {topic} does not exist")
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        out: list[dict[str, Any]] = []
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=1000).values():
                out.extend(orjson.loads(r.value) for r in records)
        return out
    finally:
        consumer.close()


def _service(name: str, argv: list[str], env: dict[str, str], logs: Path) -> float:
    """Run ``amiwatch <argv>`` to its end; its output goes to ``logs/<name>.log``. Returns seconds taken."""
    log_path = logs / f"{name}.log"
    started = time.perf_counter()
    with log_path.open("wb") as log:
        code = subprocess.call([sys.executable, "-m", "amiwatch.cli", *argv], env=env, stdout=log, stderr=subprocess.STDOUT)
    if code != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-30:]
        raise RuntimeError(f"amiwatch {argv[0]} exited with {code}; last lines of {log_path}:\n" + "\n".join(tail))
    return time.perf_counter() - started


def _delete_topics(bootstrap: str, prefix: str) -> None:
    """The run's topics (ours and the detector's changelogs, all under the run's prefix) are of no use afterwards."""
    with closing(KafkaAdminClient(bootstrap_servers=bootstrap, client_id="amiwatch-evaluate")) as admin:
        mine = [name for name in admin.list_topics() if name.startswith(prefix)]
        if mine:
            admin.delete_topics(mine)


def run_via_kafka(
    sim: Simulation,
    thresholds: Path | None,
    *,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> KafkaRun:
    """Publish ``sim``, run ingest and detect on it, and read back the alerts and dead letters.

    ``settings`` default to the environment's (broker, topic prefix, partitions).
    """
    base = settings or load_settings()
    bootstrap = start_local_broker(base)
    topics = Topics(prefix=f"{base.topics.prefix}eval-{uuid.uuid4().hex[:8]}.")
    settings = replace(base, bootstrap_servers=bootstrap, topics=topics)
    timings: dict[str, float] = {}
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="amiwatch-evaluate-")))
        ensure_topics(bootstrap, topics, settings.partitions)
        stack.callback(_delete_topics, bootstrap, topics.prefix)
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "AMIWATCH_TOPIC_PREFIX": topics.prefix,
            "AMIWATCH_PARTITIONS": str(settings.partitions),
            "AMIWATCH_STATE_DIR": str(work / "state"),
        }
        if thresholds is not None:
            env["AMIWATCH_THRESHOLDS"] = str(Path(thresholds).resolve())
        started = time.perf_counter()
        sink = KafkaSink(settings)
        try:
            sim.run(sink, progress=progress)
        finally:
            failures = sink.close()
        if failures:
            raise RuntimeError(f"the simulator could not deliver {failures} records to {bootstrap}")
        timings["publish"] = time.perf_counter() - started
        idle = ["--exit-when-idle", str(IDLE_S)]
        timings["ingest"] = _service("ingest", ["ingest", *idle, "--metrics-port", "0"], env, work)
        detect = ["detect", *idle, "--metrics-port", "0", "--web-port", str(_free_port()), "--worker-name", "evaluate"]
        timings["detect"] = _service("detect", detect, env, work)
        started = time.perf_counter()
        records = _read_topic(bootstrap, topics.alerts)
        rejected: dict[str, int] = {}
        for letter in _read_topic(bootstrap, topics.dlq):
            rejected[letter["reason"]] = rejected.get(letter["reason"], 0) + 1
        timings["read back"] = time.perf_counter() - started
    return KafkaRun(records=records, rejected=dict(sorted(rejected.items())), timings_s=timings)
