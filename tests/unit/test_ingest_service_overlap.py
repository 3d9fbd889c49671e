"""Ingest's loop: a batch is judged while the previous one's transaction commits, and an abort drops both.

The service runs against a fake transactional producer and consumer (no
broker): the producer refuses a transaction begun while another is open,
so the tests also show the transactions never overlap, only the judging.
"""

from __future__ import annotations

import asyncio
from collections import namedtuple
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from amiwatch.settings import Topics
from services.ingest import service as service_module
from services.ingest.archive_view import AreaArchive
from services.ingest.normalise import format_time, parse_time
from services.ingest.partition import PartitionProcessor
from services.ingest.service import IngestConfig, IngestService

Record = namedtuple("Record", "topic partition offset key value timestamp headers")
T0 = int(parse_time("2026-01-05T00:00:00Z"))
METERS = 100


class FakeProducer:
    """Records what it is asked; a transaction takes 10 ms to commit; the first ``fail`` commits fail."""

    def __init__(self, service: IngestService, fail: int = 0) -> None:
        self.service = service
        self.fail = fail
        self.open = False
        self.log: list[Any] = []

    async def begin_transaction(self) -> None:
        assert not self.open, "a transaction began while another was open"
        self.open = True
        self.log.append("begin")

    async def send(self, topic: str, value: bytes, **_: Any) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def send_offsets_to_transaction(self, offsets: dict[TopicPartition, int], group: str) -> None:
        self.log.append(("offsets", {tp.partition: offset for tp, offset in offsets.items()}))

    async def commit_transaction(self) -> None:
        await asyncio.sleep(0.01)
        if self.fail:
            self.fail -= 1
            raise KafkaError("the broker said no")
        self.open = False
        self.log.append(("commit", self.service._processors[0].end))  # how far judging had got meanwhile

    async def abort_transaction(self) -> None:
        self.open = False
        self.log.append("abort")


class FakeConsumer:
    def __init__(self) -> None:
        self.seeks: list[tuple[int, int]] = []

    async def position(self, tp: TopicPartition) -> int:
        return 1 << 40

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp.partition, offset))

    async def committed(self, tp: TopicPartition) -> None:
        return None

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 0)

    def last_stable_offset(self, tp: TopicPartition) -> None:
        return None

    def highwater(self, tp: TopicPartition) -> None:
        return None


def batch(topics: Topics, first: int, count: int) -> dict[TopicPartition, list[Record]]:
    """``count`` single readings from offset ``first`` on: meter k of interval k // METERS."""
    records = []
    for offset in range(first, first + count):
        reading = {"kind": "meter_reading", "area_id": "A1", "ts": format_time(T0 + 900 * (1 + offset // METERS)),
                   "interval_minutes": 15, "meter_id": f"M{offset % METERS}", "energy": 0.25}
        records.append(Record(topics.raw, 0, offset, b"A1", orjson.dumps(reading), 0, []))
    return {TopicPartition(topics.raw, 0): records}


def running_service(monkeypatch: pytest.MonkeyPatch, fail: int = 0) -> tuple[IngestService, FakeProducer, FakeConsumer]:
    topics = Topics("t.")
    service = IngestService(IngestConfig(bootstrap_servers="unused:1", topics=topics, group="g", worker="w"))
    service.archive.put(AreaArchive("A1", None, {f"M{i}": "active" for i in range(METERS)}))
    producer, consumer = FakeProducer(service, fail), FakeConsumer()
    service._producer, service._consumer = producer, consumer  # type: ignore[assignment]
    service._checkpoint_reader = consumer  # type: ignore[assignment]  # only handed to load_checkpoints, faked
    service._checkpoint_partitions = [TopicPartition(topics.ingest_checkpoints, 0)]
    service._processors[0] = PartitionProcessor(0, service.archive)
    service._next[0] = 0

    async def no_checkpoints(*_: Any) -> dict[int, Any]:
        return {}

    monkeypatch.setattr(service_module, "load_checkpoints", no_checkpoints)
    return service, producer, consumer


def test_the_next_batch_is_judged_while_the_last_one_commits(monkeypatch: pytest.MonkeyPatch) -> None:
    async def run() -> tuple[IngestService, FakeProducer]:
        service, producer, _ = running_service(monkeypatch)
        topics = service.config.topics
        await service._handle(batch(topics, 0, 1000))
        await service._handle(batch(topics, 1000, 1000))  # judged while the first commits
        await service._settle()
        return service, producer

    service, producer = asyncio.run(run())
    commits = [entry[1] for entry in producer.log if entry[0] == "commit"]
    assert len(commits) == 2 and producer.log.count("begin") == 2
    assert commits[0] > 1000  # the second batch was being judged before the first had committed
    assert service._processors[0].end == 2000 and service._in_flight is None


def test_an_aborted_transaction_drops_the_batch_judged_meanwhile_and_rebuilds_the_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def run() -> tuple[IngestService, FakeProducer, FakeConsumer, PartitionProcessor]:
        service, producer, consumer = running_service(monkeypatch, fail=1)
        topics = service.config.topics
        before = service._processors[0]
        await service._handle(batch(topics, 0, 1000))
        await service._handle(batch(topics, 1000, 1000))  # judged from state the abort throws away
        return service, producer, consumer, before

    service, producer, consumer, before = asyncio.run(run())
    assert producer.log.count("begin") == 1 and "abort" in producer.log  # the second batch was never sent
    assert service._processors[0] is not before and service._processors[0].end is None  # rebuilt from scratch
    assert consumer.seeks == [(0, 0)] and service._next[0] == 0  # input read again from the last commit
    assert service._in_flight is None
