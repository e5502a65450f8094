"""Keyword index on PostgreSQL: one stored tsvector of title and text per chunk, under one GIN index.

A query's words are OR-ed, and its condition used to span the chunks and documents tables, so PostgreSQL
scanned and parsed every chunk (about a minute a query at a million chunks). SQLite's FTS5 table is unchanged.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from alembic import op

from index import keyword

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        keyword.rebuild(bind)


def downgrade() -> None:
    raise NotImplementedError("the keyword index is not downgraded")
