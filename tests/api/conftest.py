"""Fixtures of the API tests: a fresh database on SQLite and on PostgreSQL, keys, an app.

``database_url`` is parametrized over ``sqlite`` and ``postgresql``: every
store test runs on both. PostgreSQL is a throwaway cluster started once per
session through ``deploy/postgres/pgctl.sh`` (which installs Debian's package
if the server is missing) under ``var/test-postgres/session-<pid>/``; each
test gets a database of its own in it. A cluster that cannot start FAILS the
tests that need it: they are never skipped.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from amiwatch.settings import REPO_ROOT
from services.api.store.session import Store
from tests.conftest import wipe_stale_sessions

def pytest_configure(config: pytest.Config) -> None:
    # Starlette's TestClient asks for the httpx2 package; httpx works and is what the API uses.
    config.addinivalue_line("filterwarnings", "ignore:Using `httpx` with `starlette.testclient`")


PGCTL = REPO_ROOT / "deploy" / "postgres" / "pgctl.sh"
PG_ROOT = REPO_ROOT / "var" / "test-postgres"


def _wipe_stale_clusters() -> None:
    wipe_stale_sessions(
        PG_ROOT, lambda session: subprocess.run([str(PGCTL), "stop", str(session), "--wipe"], capture_output=True, timeout=60)
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a running PostgreSQL (``AMIWATCH_TEST_POSTGRES_URL``, else a session cluster)."""
    external = os.environ.get("AMIWATCH_TEST_POSTGRES_URL", "").strip()
    if external:
        yield external
        return
    _wipe_stale_clusters()
    session_dir = PG_ROOT / f"session-{os.getpid()}"
    proc = subprocess.run([str(PGCTL), "start", str(session_dir)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"PostgreSQL did not start (pgctl.sh exit {proc.returncode}):\n{proc.stderr[-3000:]}", pytrace=False)
    url = proc.stdout.strip().splitlines()[-1]
    try:
        yield url
    finally:
        subprocess.run([str(PGCTL), "stop", str(session_dir), "--wipe"], capture_output=True, timeout=120)


def _fresh_postgres_database(server_url: str) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of its own for this test, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'amiwatch.db'}"
    return _fresh_postgres_database(request.getfixturevalue("postgres_server"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An SQLite database only (for tests about the HTTP surface, not the store)."""
    return f"sqlite:///{tmp_path / 'amiwatch.db'}"


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated store on each database."""
    from services.api.store.migrate import upgrade

    s = Store(database_url)
    upgrade(s)
    try:
        yield s
    finally:
        s.dispose()
