"""faust-streaming 0.15 against the real broker: table recovery from the changelog, and a rebalance.

The app (``faust_counter_app.py``) counts messages per key in a
memory-backed table and publishes each new count. Both tests run real
worker subprocesses, kill them with SIGKILL (no goodbye to the group, no
flush) and read the counts that survive from the output topic. A worker is
killed only once its input offsets are committed: Faust is at-least-once,
so messages processed after the last commit would (rightly) be counted
again, and the counts asserted here would not be exact.

Records are produced only once the worker that will read them has settled
(logged "Worker ready" after its latest rebalance). faust-streaming 0.15.3
resumes stream partitions *before* seeking them to the committed offsets
when recovery ends (``Recovery.on_recovery_completed``), so a record already
waiting at that moment is sometimes processed twice and sometimes skipped
while its offset is committed: reproduced here about one run in ten. These
tests prove recovery and rebalancing; that race is a Faust bug the
detector has to live with (or patch), not something to hide in a test.

The broker runs with ``auto.create.topics.enable=false``: these tests also
prove Faust needs no implicit topic creation (it declares its changelog and
leader topics itself; the source and output come from ``ensure_topics``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import CoordinatorNotAvailableError

from amiwatch.kafka.clients import sync_consumer, sync_producer
from amiwatch.kafka.topics import describe_topics
from amiwatch.settings import Topics
from tests.conftest import TEST_PARTITIONS, free_ports

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

APP = Path(__file__).with_name("faust_counter_app.py")
KEYS = [f"area-{i}" for i in range(8)]  # key i goes to partition i % 4, so every partition has two keys
WAIT_S = 40.0


class Worker:
    """One Faust worker subprocess with a data dir and web port of its own; its log kept for failures."""

    def __init__(self, name: str, env: dict[str, str], tmp_path: Path) -> None:
        self.name = name
        self.log_path = tmp_path / f"{name}.log"
        (web_port,) = free_ports(1)
        command = [sys.executable, str(APP), "--datadir", str(tmp_path / f"{name}-data"), "worker",
                   "--web-host", "127.0.0.1", "--web-port", str(web_port), "--loglevel", "info"]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, env={**env, "COUNTER_WORKER": name}, cwd=tmp_path,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def log_size(self) -> int:
        """Where the log ends now: pass it to :meth:`wait_settled` to wait for a later rebalance."""
        return self.log_path.stat().st_size

    def wait_settled(self, since: int = 0) -> None:
        """Until the worker has finished a rebalance that it began after byte ``since`` of its log."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and self.process.poll() is None:
            text = self.log_path.read_bytes()[since:]
            began = max(text.rfind(b"(Re-)joining group"), text.rfind(b"Executing _on_partitions_assigned"))
            if began >= 0 and text.rfind(b"Worker ready") > began:
                return
            time.sleep(0.1)
        pytest.fail(f"worker {self.name} did not settle\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no commit, no leaving the group, exactly like a crash."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.name} (exit {self.process.poll()}) ---\n" + "\n".join(text)


@pytest.fixture
def workers(kafka_env: dict[str, str], kafka_topics: Topics, tmp_path: Path) -> Iterator[Callable[[str], Worker]]:
    """Start workers of this test's counter app by name; all are killed at the end."""
    env = {**kafka_env, "COUNTER_APP_ID": f"{kafka_topics.prefix}counter", "COUNTER_SOURCE": kafka_topics.frames,
           "COUNTER_OUTPUT": kafka_topics.alerts, "COUNTER_PARTITIONS": str(TEST_PARTITIONS)}
    started: list[Worker] = []

    def start(name: str) -> Worker:
        started.append(Worker(name, env, tmp_path))
        return started[-1]

    yield start
    for worker in started:
        worker.kill()


def produce(bootstrap: str, topic: str, per_key: dict[str, int]) -> None:
    """``per_key[k]`` messages under key ``k``, key i on partition i % 4."""
    with closing(sync_producer(bootstrap)) as producer:
        for key, n in per_key.items():
            for _ in range(n):
                producer.send(topic, key=key.encode(), value=b"1", partition=KEYS.index(key) % TEST_PARTITIONS)
        producer.flush()


class Output:
    """Reads the app's output topic from the start; ``records`` holds every count published so far."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = sync_consumer(bootstrap_servers=bootstrap)
        self.consumer.assign([TopicPartition(topic, p) for p in range(TEST_PARTITIONS)])
        self.records: list[dict] = []

    def latest(self) -> dict[str, int]:
        return {record["key"]: record["count"] for record in self.records}

    def wait_for(self, expected: dict[str, int], workers: list[Worker]) -> None:
        """Until the latest count of every key is ``expected`` (fail with the worker logs if not)."""
        deadline = time.monotonic() + WAIT_S
        while self.latest() != expected and time.monotonic() < deadline:
            for batch in self.consumer.poll(timeout_ms=500).values():
                self.records.extend(json.loads(message.value) for message in batch)
            if any(worker.process.poll() is not None for worker in workers):
                break
        logs = "\n".join(worker.log_tail() for worker in workers)
        history = {key: [f"{r['count']}@{r['worker']}" for r in self.records if r["key"] == key] for key in expected}
        assert self.latest() == expected, f"counts {self.latest()} != {expected}; published {history}\n{logs}"


@pytest.fixture
def output(kafka_bootstrap: str, kafka_topics: Topics) -> Iterator[Output]:
    """The counts the app publishes, read from the start of this test's output topic."""
    reader = Output(kafka_bootstrap, kafka_topics.alerts)
    yield reader
    reader.consumer.close()


def wait_committed(bootstrap: str, group: str, topic: str) -> None:
    """Until the group's committed offsets on ``topic`` reach the end of every partition."""
    partitions = [TopicPartition(topic, p) for p in range(TEST_PARTITIONS)]
    with closing(sync_consumer(bootstrap_servers=bootstrap)) as consumer, \
            closing(KafkaAdminClient(bootstrap_servers=bootstrap)) as admin:
        ends = consumer.end_offsets(partitions)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            committed = {tp: meta.offset for tp, meta in admin.list_group_offsets({group: partitions})[group].items()}
            if all(committed.get(tp) == ends[tp] for tp in partitions):
                return
            time.sleep(0.2)
    pytest.fail(f"group {group} did not commit up to {ends} (has {committed})")


def wait_group(bootstrap: str, group: str, topic: str, members: int) -> None:
    """Until the group is stable with ``members`` members that share all of ``topic``, each owning some."""
    with closing(KafkaAdminClient(bootstrap_servers=bootstrap)) as admin:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                described = admin.describe_groups([group])[group]
            except CoordinatorNotAvailableError:  # the broker's first group: offsets topic still being made
                described = {"group_state": "no coordinator yet"}
            owned = [
                sum(len(a["partitions"]) for a in m["member_assignment"]["assigned_partitions"] if a["topic"] == topic)
                for m in described["members"]
            ] if described["group_state"] == "Stable" else []
            if len(owned) == members and all(owned) and sum(owned) == TEST_PARTITIONS:
                return
            time.sleep(0.2)
    pytest.fail(f"group {group} never had {members} members sharing {topic}: {described}")


def test_table_recovers_from_changelog_after_sigkill(kafka_bootstrap, kafka_topics, workers, output):
    first = {key: i + 1 for i, key in enumerate(KEYS)}
    worker = workers("w1")
    worker.wait_settled()
    produce(kafka_bootstrap, kafka_topics.frames, first)
    output.wait_for(first, [worker])
    wait_committed(kafka_bootstrap, f"{kafka_topics.prefix}counter", kafka_topics.frames)
    worker.kill()

    # Faust declared its changelog itself: co-partitioned with the source, compacted.
    changelog = describe_topics(kafka_bootstrap)[f"{kafka_topics.prefix}counter-counts-changelog"]
    assert changelog == (TEST_PARTITIONS, "compact")

    # A new worker with a fresh data dir: its counts can only come from the changelog.
    seen = len(output.records)
    worker = workers("w2")
    worker.wait_settled()
    produce(kafka_bootstrap, kafka_topics.frames, {key: 1 for key in KEYS})
    output.wait_for({key: n + 1 for key, n in first.items()}, [worker])
    assert sorted(r["count"] for r in output.records[seen:]) == sorted(n + 1 for n in first.values())


def test_rebalance_moves_partitions_and_counts_to_the_survivor(kafka_bootstrap, kafka_topics, workers, output):
    group = f"{kafka_topics.prefix}counter"
    one, two = workers("w1"), workers("w2")
    wait_group(kafka_bootstrap, group, kafka_topics.frames, members=2)
    one.wait_settled()
    two.wait_settled()

    first = {key: i + 1 for i, key in enumerate(KEYS)}
    produce(kafka_bootstrap, kafka_topics.frames, first)
    output.wait_for(first, [one, two])
    assert {r["worker"] for r in output.records} == {"w1", "w2"}, "both workers should have had partitions"
    wait_committed(kafka_bootstrap, group, kafka_topics.frames)

    mark = two.log_size()
    one.kill()
    wait_group(kafka_bootstrap, group, kafka_topics.frames, members=1)  # after the 6 s session timeout
    two.wait_settled(since=mark)
    seen = len(output.records)
    produce(kafka_bootstrap, kafka_topics.frames, {key: 1 for key in KEYS})
    output.wait_for({key: n + 1 for key, n in first.items()}, [two])
    after = output.records[seen:]
    assert {r["worker"] for r in after} == {"w2"}
    assert sorted(r["count"] for r in after) == sorted(n + 1 for n in first.values())
