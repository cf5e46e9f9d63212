"""Alembic environment: Kinema runs migrations programmatically (`kinema.store.migrate`),
handing the open connection over in `config.attributes["connection"]`."""

from __future__ import annotations

from alembic import context

from kinema.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
