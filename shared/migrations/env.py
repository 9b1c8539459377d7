"""Alembic environment: the URL comes from Shipyard's settings (or the caller's config)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection
from sqlmodel import SQLModel

import shipyard.shared.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from shipyard.shared.db import get_engine

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "shared.migrate sets sqlalchemy.url"
    engine = get_engine(url)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite's batch mode copies a table and drops the old one, which a row of another
            # table that refers to it refuses while foreign keys are on (the engine turns them
            # on for every connection); they are checked as a whole once the migration is done.
            # The pragma takes effect only outside a transaction: on the driver's connection,
            # before the engine's "begin" listener opens one.
            _foreign_keys(connection, on=False)
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=sqlite,
        )
        try:
            with context.begin_transaction():
                before = _dangling(connection) if sqlite else 0
                context.run_migrations()
                if sqlite and _dangling(connection) > before:
                    raise RuntimeError("the migration left rows that refer to missing ones")
            connection.commit()
        finally:
            if sqlite:
                connection.rollback()
                _foreign_keys(connection, on=True)


def _foreign_keys(connection: Connection, *, on: bool) -> None:
    driver = connection.connection.dbapi_connection
    assert driver is not None
    driver.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def _dangling(connection: Connection) -> int:
    """How many rows refer to a row that is not there (SQLite)."""
    return len(connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall())


run_migrations_online()
