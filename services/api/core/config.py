"""The API's configuration: the project settings plus what only the API reads.

One home, one prefix (``AMIWATCH_``), a default that works locally for each
value. The shared values (database URL, Kafka, topics, host and port) come
from :mod:`amiwatch.settings`; the rest are read here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from amiwatch.settings import Settings, Topics, load_settings

__all__ = ["ApiConfig", "load_config"]


def _env(name: str, default: str) -> str:
    return os.environ.get(f"AMIWATCH_{name}", default)


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """Everything the API service (HTTP app, alert sink, webhook outbox) needs."""

    database_url: str
    bootstrap_servers: str
    topics: Topics = field(default_factory=Topics)
    host: str = "127.0.0.1"
    port: int = 8000
    sink_enabled: bool = True
    """Run the alert sink inside ``amiwatch api serve`` (``AMIWATCH_API_SINK=0`` turns it off)."""
    sink_group: str = "ami.api-sink"
    sink_max_batch: int = 500
    """Records applied per database transaction (``AMIWATCH_API_SINK_MAX_BATCH``)."""
    context_cells_per_transaction: int = 5000
    """Meter readings (and archived meters) the context sink applies per database transaction
    (``AMIWATCH_API_CONTEXT_CELLS``): with SQLite every write waits for the one before, and a batch of
    500 frames of 250 meters held the alert sink back for ~6 s."""
    max_body_bytes: int = 64 * 1024
    """Request bodies above this are refused with 413 (``AMIWATCH_API_MAX_BODY_BYTES``)."""
    webhook_url: str = ""
    """The field-service system's endpoint; empty: events stay in the outbox until one is set."""
    webhook_secret: str = ""
    webhook_max_attempts: int = 10
    webhook_backoff_s: float = 2.0
    """First retry delay; each further retry doubles it (with jitter), up to ``webhook_backoff_max_s``."""
    webhook_backoff_max_s: float = 600.0
    webhook_timeout_s: float = 5.0
    webhook_poll_s: float = 1.0
    readiness_timeout_s: float = 2.0

    def with_(self, **changes: Any) -> ApiConfig:
        return replace(self, **changes)


def load_config(settings: Settings | None = None) -> ApiConfig:
    """The API configuration from the environment as it is now."""
    s = settings or load_settings()
    return ApiConfig(
        database_url=s.database_url,
        bootstrap_servers=s.bootstrap_servers,
        topics=s.topics,
        host=s.api_host,
        port=s.api_port,
        sink_enabled=_env("API_SINK", "1") not in ("0", "false", "no", ""),
        sink_group=_env("API_SINK_GROUP", f"{s.topics.prefix}api-sink"),
        sink_max_batch=int(_env("API_SINK_MAX_BATCH", "500")),
        context_cells_per_transaction=int(_env("API_CONTEXT_CELLS", "5000")),
        max_body_bytes=int(_env("API_MAX_BODY_BYTES", str(64 * 1024))),
        webhook_url=_env("WEBHOOK_URL", ""),
        webhook_secret=_env("WEBHOOK_SECRET", ""),
        webhook_max_attempts=int(_env("WEBHOOK_MAX_ATTEMPTS", "10")),
        webhook_backoff_s=float(_env("WEBHOOK_BACKOFF_S", "2")),
        webhook_backoff_max_s=float(_env("WEBHOOK_BACKOFF_MAX_S", "600")),
        webhook_timeout_s=float(_env("WEBHOOK_TIMEOUT_S", "5")),
    )
