"""Reading a compacted topic up to "now": what ingest needs before it may judge raw input.

The archive and the ingest checkpoints are compacted topics whose latest
record per key is the truth. Both are read with a consumer outside any
group (manual assignment, nothing committed), ``read_committed``, up to the
end offsets taken when the read starts; aborted records and transaction
markers move the position without yielding records, so "caught up" is
judged by position, not by the last record seen.
"""

from __future__ import annotations

from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

__all__ = ["read_to_end", "drain"]


async def drain(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    apply: Callable[[ConsumerRecord], None],
) -> None:
    """Apply every record of the (already assigned and positioned) ``partitions`` up to their current end."""
    end = await consumer.end_offsets(partitions)
    pending = set()
    for tp in partitions:
        if await consumer.position(tp) < end[tp]:
            pending.add(tp)
    while pending:
        batch = await consumer.getmany(*pending, timeout_ms=500)
        for records in batch.values():
            for record in records:
                apply(record)
        for tp in list(pending):
            if await consumer.position(tp) >= end[tp]:
                pending.discard(tp)


async def read_to_end(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    apply: Callable[[ConsumerRecord], None],
    *,
    start: dict[TopicPartition, int] | None = None,
) -> None:
    """Assign ``partitions``, seek to ``start`` (default: the beginning) and :func:`drain` them."""
    consumer.assign(partitions)
    start = start or {}
    from_beginning = [tp for tp in partitions if tp not in start]
    if from_beginning:
        await consumer.seek_to_beginning(*from_beginning)
    for tp, offset in start.items():
        consumer.seek(tp, offset)
    await drain(consumer, partitions, apply)
