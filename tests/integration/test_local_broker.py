"""The local broker (kafkactl.sh), topic creation and transactions, on a real Kafka.

The start/stop life cycle runs on a broker of its own (other ports, other
state dir), so the session broker the other tests share is never touched.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from contextlib import closing
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from kafka.errors import KafkaTimeoutError

from amiwatch.kafka.clients import aio_consumer, aio_producer, sync_consumer, sync_producer
from amiwatch.kafka.local_broker import KAFKACTL, broker_running, kafkactl_env
from amiwatch.kafka.topics import describe_topics, ensure_topics
from amiwatch.settings import Settings, Topics
from tests.conftest import TEST_PARTITIONS, local_broker_settings

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def kafkactl(settings: Settings, action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(KAFKACTL), action], env={**os.environ, **kafkactl_env(settings)},
                          capture_output=True, text=True, timeout=120)


def brokers_using(state_dir: Path) -> list[int]:
    """Pids of Kafka processes whose command line names a file under ``state_dir``."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue  # not a process, or gone meanwhile
        if b"kafka.Kafka" in cmdline and str(state_dir).encode() in cmdline:
            pids.append(int(proc.name))
    return pids


def test_kafkactl_start_status_restart_stop(tmp_path: Path) -> None:
    settings = local_broker_settings(tmp_path / "state", heap="256m")
    bootstrap, topics = settings.bootstrap_servers, Topics(prefix="life.")
    try:
        assert kafkactl(settings, "status").returncode == 3

        started = kafkactl(settings, "start")
        assert (started.returncode, started.stdout.strip()) == (0, bootstrap), started.stderr
        status = kafkactl(settings, "status")
        assert (status.returncode, status.stdout.strip()) == (0, bootstrap)
        assert broker_running(settings)
        again = kafkactl(settings, "start")
        assert again.returncode == 0 and "already running" in again.stderr

        # A plain kafka-python client sees the topics made on it...
        ensure_topics(bootstrap, topics, 2)
        with closing(sync_consumer(bootstrap_servers=bootstrap)) as consumer:
            assert set(topics.all()) <= consumer.topics()
        # ...and the broker never makes one up for a producer that misspells a name.
        with closing(sync_producer(bootstrap, max_block_ms=1500)) as producer, pytest.raises(KafkaTimeoutError):
            producer.send("life.no-such-topic", b"x").get(timeout=5)
        assert "life.no-such-topic" not in describe_topics(bootstrap)

        # A restart keeps the cluster id, the topics and their layout.
        stopped = kafkactl(settings, "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert kafkactl(settings, "status").returncode == 3 and not broker_running(settings)
        assert brokers_using(settings.state_dir) == []
        assert kafkactl(settings, "start").returncode == 0
        assert {name: describe_topics(bootstrap)[name][0] for name in topics.all()} == dict.fromkeys(topics.all(), 2)
    finally:
        stopped = kafkactl(settings, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert brokers_using(settings.state_dir) == []
    assert not (settings.state_dir / "kafka" / "kafka.pid").exists()
    assert "not running" in kafkactl(settings, "stop").stderr


def test_ensure_topics_partitions_config_and_idempotence(kafka_bootstrap: str, kafka_topics: Topics) -> None:
    described = describe_topics(kafka_bootstrap)
    for name, config in kafka_topics.all().items():
        assert described[name] == (TEST_PARTITIONS, config.get("cleanup.policy", "delete")), name

    fresh = Topics(prefix=f"e{uuid.uuid4().hex[:8]}.")
    assert ensure_topics(kafka_bootstrap, fresh, 3) == sorted(fresh.all())
    assert ensure_topics(kafka_bootstrap, fresh, 3) == []
    assert ensure_topics(kafka_bootstrap, kafka_topics, 3) == []  # existing topics keep their 4 partitions
    assert describe_topics(kafka_bootstrap)[kafka_topics.frames][0] == TEST_PARTITIONS


async def _consume_transform_produce(bootstrap: str, topics: Topics) -> None:
    """Ingest's pattern: output and input offsets in one transaction; aborted output stays invisible."""
    group, raw = f"{topics.prefix}ingest", TopicPartition(topics.raw, 0)
    plain = aio_producer(bootstrap)
    consumer = aio_consumer(bootstrap_servers=bootstrap, group_id=group)
    transactional = aio_producer(bootstrap, transactional_id=f"{topics.prefix}ingest-0")
    reader = aio_consumer(bootstrap_servers=bootstrap)
    for client in (plain, consumer, transactional, reader):
        await client.start()
    try:
        for i in range(5):
            await plain.send(topics.raw, f"reading-{i}".encode(), key=b"A0001", partition=0)
        await plain.flush()

        consumer.assign([raw])
        records = []
        while len(records) < 5:
            records += (await consumer.getmany(raw, timeout_ms=10_000))[raw]
        async with transactional.transaction():
            for record in records:
                await transactional.send(topics.frames, b"frame:" + record.value, key=record.key, partition=0)
            await transactional.send_offsets_to_transaction({raw: records[-1].offset + 1}, group)

        await transactional.begin_transaction()
        await transactional.send_and_wait(topics.frames, b"aborted", key=b"A0001", partition=0)
        await transactional.abort_transaction()
        async with transactional.transaction():
            await transactional.send(topics.frames, b"end", key=b"A0001", partition=0)

        frames = TopicPartition(topics.frames, 0)
        reader.assign([frames])
        seen: list[bytes] = []
        while b"end" not in seen:
            seen += [record.value for record in (await reader.getmany(frames, timeout_ms=10_000))[frames]]
        assert seen == [f"frame:reading-{i}".encode() for i in range(5)] + [b"end"]
        assert await consumer.committed(raw) == 5
    finally:
        for client in (plain, consumer, transactional, reader):
            await client.stop()


def test_transactional_producer_with_offsets_and_read_committed(kafka_bootstrap: str, kafka_topics: Topics) -> None:
    asyncio.run(asyncio.wait_for(_consume_transform_produce(kafka_bootstrap, kafka_topics), timeout=60))
