"""The bare consumer: aiokafka draining a topic and doing nothing with the records.

It is the ceiling for any Python consumer of this broker on this machine:
the same client library, options and partitions as ingest's consumer
(:func:`amiwatch.kafka.clients.aio_consumer`: ``read_committed``, from the
earliest offset), no group, no decoding, no output. It snapshots the end
offsets, assigns every partition, and counts records and value bytes until
each partition's position reaches its end. The time runs from the first
record received to the last, like the services' rates.

Run by the bench as a subprocess (its own interpreter and peak RSS, no
share of the bench's GIL)::

    python -m amiwatch.bench.bare --topic <prefix>readings.raw --partitions N

prints one JSON object: ``{"records", "value_bytes", "seconds"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import orjson
from aiokafka import TopicPartition

from amiwatch.kafka.clients import aio_consumer
from amiwatch.settings import load_settings

__all__ = ["drain", "main"]


async def drain(bootstrap: str, topic: str, partitions_count: int, max_records: int = 10_000) -> dict[str, float]:
    """Read ``topic`` (of ``partitions_count`` partitions) from its beginning to its end offsets as of the start."""
    consumer = aio_consumer(bootstrap_servers=bootstrap, client_id="amiwatch-bench-bare")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(partitions_count)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        waiting = {tp for tp in partitions if ends[tp] > 0}
        records = value_bytes = 0
        first: float | None = None
        while waiting:
            batch = await consumer.getmany(timeout_ms=1000, max_records=max_records)
            if batch and first is None:
                first = time.perf_counter()
            for messages in batch.values():
                records += len(messages)
                for m in messages:
                    value_bytes += len(m.value) if m.value is not None else 0
            for tp in list(waiting):
                if await consumer.position(tp) >= ends[tp]:
                    waiting.discard(tp)
        seconds = time.perf_counter() - first if first is not None else 0.0
        return {"records": records, "value_bytes": value_bytes, "seconds": seconds}
    finally:
        await consumer.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amiwatch.bench.bare", description=__doc__.splitlines()[0])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, required=True, help="the topic's partition count")
    parser.add_argument("--bootstrap", help="default: the settings' (KAFKA_BOOTSTRAP_SERVERS or the local broker)")
    args = parser.parse_args(argv)
    result = asyncio.run(drain(args.bootstrap or load_settings().bootstrap_servers, args.topic, args.partitions))
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
