"""Ids are never reused (SQLite AUTOINCREMENT for documents and chunks); collections carry a write generation.

SQLite hands a deleted row's id to the next insert unless the table is AUTOINCREMENT, and AUTOINCREMENT can only
be set by rebuilding the table; every row keeps its id. PostgreSQL's SERIAL sequences never reuse ids already.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

from index import keyword

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The tables as 0001 made them, with AUTOINCREMENT keys. `index.schema.upgrade` turns foreign keys off around
# migrations on SQLite, so dropping the old tables cascades nowhere.
_SQLITE_TABLES = {
    "documents": (
        "CREATE TABLE documents_new ("
        "id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "
        "collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE, "
        "source VARCHAR(2000) NOT NULL, title TEXT NOT NULL, content_hash VARCHAR(64) NOT NULL, "
        "text TEXT NOT NULL, metadata JSON NOT NULL, created_at DATETIME NOT NULL, "
        "CONSTRAINT uq_document_source UNIQUE (collection_id, source))",
        "id, collection_id, source, title, content_hash, text, metadata, created_at",
        ["CREATE INDEX ix_documents_collection_id ON documents (collection_id)"],
    ),
    "chunks": (
        "CREATE TABLE chunks_new ("
        "id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "
        "document_id INTEGER NOT NULL REFERENCES documents (id) ON DELETE CASCADE, "
        "ordinal INTEGER NOT NULL, start_char INTEGER NOT NULL, end_char INTEGER NOT NULL, text TEXT NOT NULL)",
        "id, document_id, ordinal, start_char, end_char, text",
        ["CREATE INDEX ix_chunks_document_ordinal ON chunks (document_id, ordinal)"],
    ),
}
_SQLITE_KEYWORD_TRIGGERS = ("chunks_fts_ai", "chunks_fts_ad", "chunks_fts_au")


def upgrade() -> None:
    op.add_column("collections", sa.Column("generation", sa.Integer, nullable=False, server_default="0"))
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    for trigger in _SQLITE_KEYWORD_TRIGGERS:  # they name the tables being rebuilt
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for table, (create, columns, indexes) in _SQLITE_TABLES.items():
        op.execute(create)
        op.execute(f"INSERT INTO {table}_new ({columns}) SELECT {columns} FROM {table}")
        op.execute(f"DROP TABLE {table}")
        op.execute(f"ALTER TABLE {table}_new RENAME TO {table}")
        for statement in indexes:
            op.execute(statement)
    keyword.rebuild(bind)


def downgrade() -> None:
    raise NotImplementedError("ids that were never reused cannot be made reusable again")
