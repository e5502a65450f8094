"""Alembic environment: runs on the connection that `index.schema.upgrade` hands over; no logging setup."""

from alembic import context

from index.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
