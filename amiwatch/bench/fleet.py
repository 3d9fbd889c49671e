"""Load a simulated fleet into Kafka: ``amiwatch simulate`` under a phase's topic prefix.

The fleet is published in full before anything consumes it (or, for the
latency phase, paced with ``--speed`` while the pipeline runs), by the
simulator itself, so the bench measures exactly what the simulator sends.
The same flags and seed give the same bytes, so the fleet loaded for the
pipeline phase is the one the ingest and detector phases read.
"""

from __future__ import annotations

import json
import subprocess
import time
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from amiwatch.bench.procs import AMIWATCH, BenchError, ServiceEnv
from amiwatch.settings import Topics

__all__ = ["FleetSpec", "Loaded", "simulate_argv", "load_fleet", "end_offsets", "record_count"]


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """What ``amiwatch simulate`` generates (the bench's fleet flags)."""

    areas: int
    meters_per_area: int
    days: int
    interval_minutes: int = 15
    per_reading: bool = False
    seed: int = 1

    @property
    def meters(self) -> int:
        return self.areas * self.meters_per_area


@dataclass(frozen=True, slots=True)
class Loaded:
    """A fleet on the broker: the simulator's summary and how many raw records it left."""

    summary: dict[str, Any]
    raw_records: int
    seconds: float


def simulate_argv(spec: FleetSpec, summary_path: str, *, days: int | None = None, start: str | None = None,
                  speed: float = 0.0) -> list[str]:
    argv = [
        *AMIWATCH, "simulate", "--scenario", "small",
        "--areas", str(spec.areas), "--meters-per-area", str(spec.meters_per_area),
        "--days", str(days or spec.days), "--interval", str(spec.interval_minutes),
        "--seed", str(spec.seed), "--speed", str(speed), "--summary", summary_path, "--no-progress",
    ]
    if start:
        argv += ["--start", start]
    if spec.per_reading:
        argv.append("--per-reading")
    return argv


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Partition → end offset of ``topic`` now."""
    with closing(KafkaConsumer(bootstrap_servers=bootstrap)) as consumer:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}


def record_count(bootstrap: str, topic: str) -> int:
    """Records in ``topic`` (a topic written without transactions: end offsets are record counts)."""
    return sum(end_offsets(bootstrap, topic).values())


def load_fleet(spec: FleetSpec, env: ServiceEnv) -> Loaded:
    """Publish the fleet to ``env``'s topics (which must exist) and wait until it is all there."""
    env.state_dir.mkdir(parents=True, exist_ok=True)
    summary_path = env.state_dir / "load-summary.json"
    started = time.monotonic()
    with open(env.state_dir / "simulate.log", "ab") as log:
        result = subprocess.run(simulate_argv(spec, str(summary_path)), env=env.environ(), stdout=log, stderr=log)
    if result.returncode != 0:
        raise BenchError(f"amiwatch simulate exited with {result.returncode}; see {env.state_dir / 'simulate.log'}")
    seconds = time.monotonic() - started
    summary = json.loads(summary_path.read_text())
    return Loaded(summary, record_count(env.bootstrap, Topics(env.prefix).raw), seconds)
