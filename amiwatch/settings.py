"""Settings from the environment: one home, one prefix (``AMIWATCH_``).

Every value has a default that works on a developer's machine; one
environment variable changes it. ``KAFKA_BOOTSTRAP_SERVERS`` (the
standard name, no prefix) points everything at an existing cluster, in
which case nothing local is started.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Settings", "Topics", "REPO_ROOT", "load_settings"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    return os.environ.get(f"AMIWATCH_{name}", default)


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names; a prefix keeps test runs and deployments apart."""

    prefix: str = "ami."

    @property
    def raw(self) -> str:
        """Collection-system readings as the head-end sends them (key: area id)."""
        return f"{self.prefix}readings.raw"

    @property
    def dlq(self) -> str:
        """Rejected raw messages with reason and origin (key: area id when known)."""
        return f"{self.prefix}readings.dlq"

    @property
    def frames(self) -> str:
        """Canonical columnar area frames, one area × one interval (key: area id)."""
        return f"{self.prefix}frames"

    @property
    def archive(self) -> str:
        """Customer archives, one record per area listing its meters (key: area id; compacted)."""
        return f"{self.prefix}archive"

    @property
    def alerts(self) -> str:
        """Alert create/update/resolve records (key: subject id)."""
        return f"{self.prefix}alerts"

    @property
    def labels(self) -> str:
        """The simulator's ground truth, read only by evaluation (key: subject id)."""
        return f"{self.prefix}labels"

    @property
    def ingest_checkpoints(self) -> str:
        """Ingest's per-input-partition checkpoint, written in the same transaction as its output (compacted)."""
        return f"{self.prefix}ingest.checkpoints"

    @property
    def detector_app_id(self) -> str:
        """The detector's Faust app id: its consumer group and the prefix of its changelogs."""
        return f"{self.prefix}detector"

    def detector_changelog(self, table: str) -> str:
        """Faust's name for the changelog of one of the detector's tables."""
        return f"{self.detector_app_id}-{table}-changelog"

    def all(self) -> dict[str, dict[str, str]]:
        """Every topic with its extra configuration (compaction where it belongs).

        The detector's table changelogs are created here too, with the frames'
        partition count: Faust would create them itself, but a worker whose
        first frame arrives before the new changelog shows in its metadata
        crashes with ``PartitionsMismatch`` until the next rebalance.
        """
        compacted = {"cleanup.policy": "compact"}
        return {
            self.raw: {},
            self.dlq: {},
            self.frames: {},
            self.archive: compacted,
            self.alerts: {},
            self.labels: {},
            self.ingest_checkpoints: compacted,
            self.detector_changelog("archives"): compacted,
            self.detector_changelog("area_state"): compacted,
            self.detector_changelog("frame_offsets"): compacted,
            self.detector_changelog("area_voltage"): compacted,  # a global table: every worker reads all of it
        }


@dataclass(frozen=True, slots=True)
class Settings:
    """All configuration of all services, read once from the environment."""

    bootstrap_servers: str
    external_kafka: bool
    kafka_port: int
    kafka_controller_port: int
    kafka_heap: str
    kafka_version: str
    kafka_home: Path
    state_dir: Path
    partitions: int
    topics: Topics = field(default_factory=Topics)
    database_url: str = ""
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    ingest_metrics_port: int = 9101
    detector_metrics_port: int = 9102
    detector_web_port: int = 6066


def load_settings() -> Settings:
    """Read the settings from the environment as it is now."""
    state_dir = Path(_env("STATE_DIR", str(REPO_ROOT / "var"))).resolve()
    kafka_port = int(_env("KAFKA_PORT", "19092"))
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    kafka_version = _env("KAFKA_VERSION", "3.9.1")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Settings(
        bootstrap_servers=external or f"127.0.0.1:{kafka_port}",
        external_kafka=bool(external),
        kafka_port=kafka_port,
        kafka_controller_port=int(_env("KAFKA_CONTROLLER_PORT", "19093")),
        kafka_heap=_env("KAFKA_HEAP", "512m"),
        kafka_version=kafka_version,
        kafka_home=Path(_env("KAFKA_HOME", str(cache / "amiwatch" / f"kafka-{kafka_version}"))),
        state_dir=state_dir,
        partitions=int(_env("PARTITIONS", "8")),
        topics=Topics(prefix=_env("TOPIC_PREFIX", "ami.")),
        database_url=_env("DATABASE_URL", f"sqlite:///{state_dir / 'amiwatch.db'}"),
        api_host=_env("API_HOST", "127.0.0.1"),
        api_port=int(_env("API_PORT", "8000")),
        ingest_metrics_port=int(_env("INGEST_METRICS_PORT", "9101")),
        detector_metrics_port=int(_env("DETECTOR_METRICS_PORT", "9102")),
        detector_web_port=int(_env("DETECTOR_WEB_PORT", "6066")),
    )
