"""A minimal Faust app that proves faust-streaming works on our broker: it counts messages per key.

The count lives in a changelog-backed table (memory store, so after a
restart it can only come from the changelog). For every message it
publishes ``{"key", "count", "worker", "partition"}`` to the output topic,
which is how the test watches the table from outside.

Run as a worker (a subprocess of ``test_faust_on_broker.py``)::

    python faust_counter_app.py --datadir DIR worker --web-port PORT

Environment: ``KAFKA_BOOTSTRAP_SERVERS``, ``COUNTER_APP_ID`` (also the
consumer group), ``COUNTER_SOURCE``, ``COUNTER_OUTPUT``,
``COUNTER_PARTITIONS`` (the source's partition count; the changelog must
match it) and ``COUNTER_WORKER`` (a name for the output).
"""

from __future__ import annotations

import os

import faust

__all__ = ["app"]

PARTITIONS = int(os.environ["COUNTER_PARTITIONS"])
WORKER = os.environ["COUNTER_WORKER"]

app = faust.App(
    os.environ["COUNTER_APP_ID"],
    broker=[f"kafka://{server}" for server in os.environ["KAFKA_BOOTSTRAP_SERVERS"].split(",")],
    store="memory://",
    # Faust creates the changelog itself, with this many partitions; it must
    # equal the source's or Faust refuses to start (PartitionsMismatch).
    topic_partitions=PARTITIONS,
    # Defaults are 60 s: a SIGKILLed worker's partitions would sit idle that
    # long before the group notices. 6 s is the broker's minimum.
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
    broker_rebalance_timeout=20.0,
    # Commit often, so the test can wait for "everything committed" quickly.
    broker_commit_interval=0.5,
    key_serializer="raw",
    value_serializer="json",
)

source = app.topic(os.environ["COUNTER_SOURCE"], partitions=PARTITIONS)
output = app.topic(os.environ["COUNTER_OUTPUT"], partitions=PARTITIONS)
counts = app.Table("counts", default=int, partitions=PARTITIONS)


@app.agent(source)
async def count(stream: faust.StreamT) -> None:
    """Count each message under its key and publish the new count."""
    async for event in stream.events():
        key = event.key.decode()
        counts[key] += 1
        record = {"key": key, "count": counts[key], "worker": WORKER, "partition": event.message.partition}
        await output.send(key=event.key, value=record)


if __name__ == "__main__":
    app.main()
