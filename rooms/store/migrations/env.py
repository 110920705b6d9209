"""Alembic environment: always run with a connection handed in by rooms.store.migrate."""
from alembic import context
from sqlmodel import SQLModel

import rooms.store.tables  # noqa: F401  (registers the tables on SQLModel.metadata)

target_metadata = SQLModel.metadata
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `confctl db upgrade` or rooms.store.migrate.upgrade()")
context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
