"""Schema migrations (Alembic), run programmatically: at startup and by ``amiwatch api migrate``.

Two processes starting at once (``api serve`` and ``api sink``) must not
both migrate: on PostgreSQL an advisory lock serialises them, on SQLite the
``BEGIN IMMEDIATE`` write transaction does. Alembic's version table lives
in the same database, so a migrated database is recognised and left alone.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from services.api.store.session import Store

__all__ = ["upgrade", "current_revision", "head_revision", "alembic_config"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_LOCK_ID = 0x616D6977  # "amiw": the advisory lock that serialises migrations on PostgreSQL


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(store: Store) -> str | None:
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(store: Store, revision: str = "head") -> str | None:
    """Bring the database to ``revision`` (default: the newest); returns the revision it is at."""
    config = alembic_config()
    with store.engine.connect() as conn:
        conn = conn.execution_options(write=True)
        with conn.begin():
            if store.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    return current_revision(store)
