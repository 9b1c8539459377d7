"""Engines and sessions: one engine per database URL per process, made on first use."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, create_engine

from shared.exceptions import ConfigurationError, Conflict


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """The engine for `url`; SQLite gets WAL and a busy timeout so worker processes share it."""
    if url.startswith("sqlite"):
        require_sqlite_returning()
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; issue it ourselves so that
        # BEGIN IMMEDIATE-style locking works for read-modify-write (release numbering).
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


# Stage claims and results are single UPDATE … RETURNING statements (SQLite 3.35, March 2021).
SQLITE_MINIMUM = (3, 35, 0)


def require_sqlite_returning(version: tuple[int, int, int] = sqlite3.sqlite_version_info) -> None:
    """Refuse, clearly, a Python whose SQLite is too old for embedded mode."""
    if version < SQLITE_MINIMUM:
        found = ".".join(map(str, version))
        raise ConfigurationError(
            f"embedded mode needs SQLite 3.35 or newer; this Python's is {found} "
            "(use a newer Python build, or PostgreSQL: SHIPYARD_DATABASE_URL)"
        )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # let the "begin" listener own transactions
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def flush_or_conflict(session: Session, message: str) -> None:
    """Flush; a unique constraint that refuses it becomes a Conflict with `message`."""
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(message) from exc


class StatementCounter:
    """Counts the statements (BEGIN, COMMIT and savepoints aside) and the commits that an
    engine runs while this is entered: what a piece of work costs the store. For the tests'
    statement budgets and the benchmarks; nothing in the product listens."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statements: list[str] = []
        self.commits = 0

    def _statement(self, _conn: object, _cursor: object, statement: str, *_args: object) -> None:
        verb = statement.split()[0].upper()
        if verb not in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK"):
            self.statements.append(" ".join(statement.split()))

    def _commit(self, _conn: object) -> None:
        self.commits += 1

    def __enter__(self) -> StatementCounter:
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "commit", self._commit)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "commit", self._commit)
