"""Keyword index: index each chunk's document title beside its text (SQLite).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op

from index import keyword

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    keyword.rebuild(op.get_bind())


def downgrade() -> None:
    raise NotImplementedError("the keyword index is not downgraded")
