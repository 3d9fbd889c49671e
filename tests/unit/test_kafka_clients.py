"""The project's client defaults: what the services produce, every client of the project can read."""

from __future__ import annotations

import asyncio

import orjson
from aiokafka.codec import zstd_decode as aiokafka_zstd_decode
from aiokafka.codec import zstd_encode as aiokafka_zstd_encode
from kafka.codec import has_zstd
from kafka.codec import zstd_decode as kafka_python_zstd_decode
from kafka.codec import zstd_encode as kafka_python_zstd_encode

from amiwatch.kafka import clients


def test_services_produce_zstd_that_kafka_python_reads_and_back() -> None:
    async def compression() -> str:
        return clients.aio_producer("127.0.0.1:1")._compression_type  # made, never started

    assert asyncio.run(compression()) == "zstd"
    assert has_zstd()  # without zstandard, kafka-python tools could not read a single batch
    payload = orjson.dumps([{"meter_id": f"M{i:04d}", "energy_kwh": i / 7} for i in range(500)])
    assert kafka_python_zstd_decode(aiokafka_zstd_encode(payload)) == payload
    assert aiokafka_zstd_decode(kafka_python_zstd_encode(payload)) == payload
