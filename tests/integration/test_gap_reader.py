"""``GapReader`` on the real broker: what lies between two offsets of a transactional partition.

The detector trusts it to tell a transaction marker from frames Faust skipped,
so it must return exactly the committed records of the range: no marker, no
record of an aborted transaction, nothing outside the range.
"""

from __future__ import annotations

import asyncio

import pytest
from kafka import KafkaProducer

from services.detector.gaps import GapReader

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def produce(bootstrap: str, topic: str) -> None:
    """Partition 0: committed a0 a1 | marker | aborted x | marker | committed b0 | marker."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-gaps", acks="all",
                             enable_idempotence=True)
    producer.init_transactions()
    for values, commit in (([b"a0", b"a1"], True), ([b"x"], False), ([b"b0"], True)):
        producer.begin_transaction()
        for value in values:
            producer.send(topic, value=value, partition=0)
        producer.flush()
        producer.commit_transaction() if commit else producer.abort_transaction()
    producer.close()


def test_reads_the_committed_records_of_a_range_and_nothing_else(kafka_bootstrap, kafka_topics):
    topic = kafka_topics.frames
    produce(kafka_bootstrap, topic)

    async def scenario() -> dict[str, object]:
        reader = GapReader(kafka_bootstrap, client_id="test-gaps", timeout_s=20)
        try:
            first, end = await reader.bounds(topic, 0)
            values = lambda records: [(r.offset, r.value) for r in records]  # noqa: E731
            return {
                "bounds": (first, end),
                "all": values(await reader.read(topic, 0, first, end)),
                "after_a1": values(await reader.read(topic, 0, 2, end)),
                "marker_only": values(await reader.read(topic, 0, 2, 3)),
                "aborted_only": values(await reader.read(topic, 0, 3, 5)),
                "first_only": values(await reader.read(topic, 0, 0, end, first_only=True)),
                "empty_range": values(await reader.read(topic, 0, 4, 4)),
            }
        finally:
            await reader.stop()

    got = asyncio.run(scenario())
    # offsets: a0 0, a1 1, marker 2, x 3, abort marker 4, b0 5, marker 6; end (last stable offset) 7
    assert got["bounds"] == (0, 7)
    assert got["all"] == [(0, b"a0"), (1, b"a1"), (5, b"b0")]
    assert got["after_a1"] == [(5, b"b0")]
    assert got["marker_only"] == []
    assert got["aborted_only"] == []
    assert got["first_only"] == [(0, b"a0")]
    assert got["empty_range"] == []
