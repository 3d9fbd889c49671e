"""Reading a partition's records between two offsets straight from Kafka, past Faust.

Why. faust-streaming 0.15.3 can lose frames it has fetched when a worker
takes partitions over (after a crash, or from a worker that left): they
are counted as read but never reach the agent, and the next frame the agent
sees is tens of offsets further on (seen in the broker tests, up to ~100
frames; Faust's commit then stays behind the hole for good). So the
detector keeps, per frames partition, the offset of the last frame it
applied (table ``frame_offsets``), and when a frame arrives further on than
the next one, it asks this reader what lies in between. Usually that is
only a transaction marker (ingest writes frames in transactions, and each
commit takes an offset); anything else is a frame Faust skipped, which the
agent applies before the one in hand, so every partition is still applied
whole and in offset order.

The reader is one aiokafka consumer without a group (it commits nothing
and moves no other consumer), reading ``read_committed`` like the detector.
One read at a time: the agent and the tail check share it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from amiwatch.kafka.clients import aio_consumer

__all__ = ["GapReader"]

# aiokafka logs every assignment at INFO; the reader reassigns on each read.
logging.getLogger("aiokafka.consumer.subscription_state").setLevel(logging.WARNING)


class GapReader:
    """Committed records of one partition in an offset range, read on demand."""

    def __init__(self, bootstrap_servers: str, *, client_id: str, timeout_s: float = 30.0) -> None:
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self._timeout_s = timeout_s
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            # It reads only what is already there: a fetch need not wait for more (the default waits 0.5 s).
            consumer = aio_consumer(bootstrap_servers=self._bootstrap, client_id=self._client_id, group_id=None,
                                    fetch_max_wait_ms=20)
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def read(self, topic: str, partition: int, start: int, end: int, *, first_only: bool = False
                   ) -> list[ConsumerRecord]:
        """The committed records with ``start <= offset < end``, in offset order (only the first: ``first_only``).

        ``end`` must not lie beyond the partition's last stable offset (it is
        the offset of a record already read, or the end offset), or the read
        waits for records that are not there and raises ``TimeoutError``.
        """
        if start >= end:
            return []
        tp = TopicPartition(topic, partition)
        async with self._lock:
            consumer = await self._started()
            consumer.assign([tp])
            consumer.seek(tp, start)
            found: list[ConsumerRecord] = []
            deadline = time.monotonic() + self._timeout_s
            while await consumer.position(tp) < end and not (first_only and found):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{tp} offsets {start}..{end - 1} not read in {self._timeout_s:.0f} s")
                batch = await consumer.getmany(tp, timeout_ms=500)
                found.extend(record for record in batch.get(tp, []) if record.offset < end)
            return found[:1] if first_only else found

    async def bounds(self, topic: str, partition: int) -> tuple[int, int]:
        """The partition's first offset and its end (the last stable offset: what ``read`` can reach)."""
        tp = TopicPartition(topic, partition)
        async with self._lock:
            consumer = await self._started()
            first = (await consumer.beginning_offsets([tp]))[tp]
            end = (await consumer.end_offsets([tp]))[tp]
            return first, end

    async def stop(self) -> None:
        async with self._lock:
            if self._consumer is not None:
                await self._consumer.stop()
                self._consumer = None
