"""Engines and transactions: SQLite (embedded default, WAL) or PostgreSQL, chosen by URL.

SQLite: WAL journal (readers never block the writer), ``synchronous=NORMAL``
(a commit survives a process crash; WAL makes it atomic), a busy timeout,
foreign keys on. Write transactions start with ``BEGIN IMMEDIATE`` so two
writers queue on the busy timeout instead of failing when one upgrades a read
snapshot to a write. PostgreSQL: a pooled engine with pre-ping; writers lock
the rows they change (``SELECT … FOR UPDATE``, a no-op on SQLite).

``postgresql://`` URLs are read as ``postgresql+psycopg://`` (psycopg 3).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Store", "make_engine", "normalise_url"]


def normalise_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` → ``postgresql+psycopg://``; anything else unchanged."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the project's per-dialect settings."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)


class Store:
    """One database: an engine and its sessions. ``read()`` and ``write()`` are transactions."""

    __slots__ = ("url", "engine", "_sessions", "_write_lock")

    def __init__(self, url: str, engine: Engine | None = None) -> None:
        self.url = normalise_url(url)
        self.engine = engine or make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        # SQLite has one writer at a time, and a writer that finds the database locked polls for it
        # (sleeps of up to 100 ms): a steady stream of writes from one thread can keep another waiting
        # for seconds. Writers of this process queue on a lock instead and are handed the database as
        # soon as it is free. PostgreSQL locks rows, and needs none.
        self._write_lock: AbstractContextManager[Any] = (
            threading.Lock() if self.engine.dialect.name == "sqlite" else nullcontext()
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (rolled back when the session closes; loaded objects stay readable)."""
        with self._sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        with self._write_lock, self._sessions() as session:
            session.connection(execution_options={"write": True})
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def ping(self) -> None:
        """Raise unless the database answers ``SELECT 1``."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
