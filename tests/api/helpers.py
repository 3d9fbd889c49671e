"""Helpers of the API tests: an app on a database, keys by role, alerts put straight into the store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.core.config import ApiConfig
from services.api.store import alerts as repo
from services.api.store.common import Actor
from services.api.store.keys import create_key
from services.api.store.session import Store

__all__ = ["api_client", "config_for", "key_for", "put_alerts", "auth"]


def config_for(database_url: str, **changes: Any) -> ApiConfig:
    """A configuration on ``database_url``; Kafka at a closed port unless ``bootstrap_servers`` is given."""
    return ApiConfig(**{"database_url": database_url, "bootstrap_servers": "127.0.0.1:1", **changes})


@contextmanager
def api_client(database_url: str, **changes: Any) -> Iterator[TestClient]:
    """A TestClient of an app on ``database_url`` (migrated by its lifespan), no background work."""
    app = create_app(config_for(database_url, **changes), background=False)
    with TestClient(app) as client:
        yield client


def key_for(client: TestClient, role: str, name: str) -> str:
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    with store.write() as session:
        return create_key(session, role, name, Actor("test", "admin"))[1].token


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def put_alerts(client: TestClient, *records: dict[str, Any], partition: int = 0, start: int = 0) -> None:
    """Apply alert records as the sink would (``partition``/offsets from ``start``)."""
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    with store.write() as session:
        repo.apply_stream(session, [repo.StreamRecord(r, partition, start + i) for i, r in enumerate(records)])
