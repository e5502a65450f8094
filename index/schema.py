"""Schema upgrades: every store is brought to the newest Alembic revision when it opens."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, inspect

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001"


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply pending migrations in one transaction (SQLite and PostgreSQL both have transactional DDL)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A table rebuild drops the old table: with foreign keys on, that would cascade to its children.
            # The pragma is ignored inside a transaction, so it comes first; pysqlite opens no transaction
            # before DDL on its own, so BEGIN is explicit.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            config.attributes["connection"] = connection
            if _unversioned_store(connection):
                command.stamp(config, BASELINE)
            command.upgrade(config, revision)
            if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                raise RuntimeError("schema upgrade left rows whose parent is missing; nothing was changed")
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")


def _unversioned_store(connection: Connection) -> bool:
    """A store whose tables were created before it carried a schema revision: it matches the baseline."""
    from alembic.runtime.migration import MigrationContext

    has_revision = MigrationContext.configure(connection).get_current_revision() is not None
    return not has_revision and inspect(connection).has_table("chunks")


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
