"""Kafka clients with the project's defaults, so no service repeats (or forgets) them.

Producers wait for the broker's full acknowledgement, are idempotent (a
retry never duplicates a record) and batch for a few milliseconds with
zstd, because messages are whole frames and one core has to move many of
them: aiokafka compresses lz4 only at level 9 (its high-compression mode,
~50 MB/s on a batch of frames here), zstd at its default level ~7× faster
and a quarter smaller. kafka-python reads zstd with ``zstandard``.
Consumers read only committed records (``read_committed``): ingest writes
transactionally, and an aborted transaction must never reach the detector.
They start from the earliest offset and never auto-commit, since every
service commits its input only after its output is safe.

Bootstrap servers default to the settings (``KAFKA_BOOTSTRAP_SERVERS`` or
the local broker); any keyword overrides a default.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaConsumer, KafkaProducer

from amiwatch.settings import load_settings

__all__ = ["aio_producer", "aio_consumer", "sync_producer", "sync_consumer"]

_PRODUCER = {"acks": "all", "enable_idempotence": True, "linger_ms": 5, "compression_type": "zstd"}
_CONSUMER = {"isolation_level": "read_committed", "auto_offset_reset": "earliest", "enable_auto_commit": False}


def _options(defaults: dict[str, Any], bootstrap_servers: str | None, overrides: dict[str, Any]) -> dict[str, Any]:
    bootstrap = bootstrap_servers or load_settings().bootstrap_servers
    return {**defaults, "bootstrap_servers": bootstrap, **overrides}


def aio_producer(bootstrap_servers: str | None = None, **overrides: Any) -> AIOKafkaProducer:
    """An (unstarted) aiokafka producer; pass ``transactional_id=`` for transactions."""
    return AIOKafkaProducer(**_options({**_PRODUCER, "max_batch_size": 256 * 1024}, bootstrap_servers, overrides))


def aio_consumer(*topics: str, bootstrap_servers: str | None = None, **overrides: Any) -> AIOKafkaConsumer:
    """An (unstarted) aiokafka consumer of ``topics``; pass ``group_id=`` to join a group."""
    return AIOKafkaConsumer(*topics, **_options(_CONSUMER, bootstrap_servers, overrides))


def sync_producer(bootstrap_servers: str | None = None, **overrides: Any) -> KafkaProducer:
    """A kafka-python producer, for tools and simulators that need no event loop."""
    return KafkaProducer(**_options({**_PRODUCER, "batch_size": 256 * 1024}, bootstrap_servers, overrides))


def sync_consumer(*topics: str, bootstrap_servers: str | None = None, **overrides: Any) -> KafkaConsumer:
    """A kafka-python consumer of ``topics``, for tools and tests that need no event loop."""
    return KafkaConsumer(*topics, **_options(_CONSUMER, bootstrap_servers, overrides))
