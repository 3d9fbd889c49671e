"""Alembic environment: migrations run programmatically (:mod:`services.api.store.migrate`).

The caller passes an open connection in ``config.attributes["connection"]``;
``render_as_batch`` lets the same migration scripts alter tables on SQLite.
"""

from __future__ import annotations

from alembic import context

from services.api.store.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
