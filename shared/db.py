"""Engines and sessions: one engine per database URL per process, made on first use."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache, partial
from typing import Any

from sqlalchemy import Connection, Engine, Integer, event, literal_column
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, create_engine

from shipyard.shared.exceptions import ConfigurationError, Conflict


def fixed_limit(rows: int) -> ColumnElement[int]:
    """`LIMIT rows` written into a statement's text, for `.limit()` of a fixed count.

    SQLAlchemy sends a limit as a parameter. PostgreSQL cannot cost a generic plan whose LIMIT
    it does not know, so it keeps planning such a statement anew at every execution: the
    history lookup spent 0.26–0.30 ms of its 0.43–0.47 ms planning (docs/benchmarks.md,
    issue 28). With the count in the text, the prepared statement's generic plan is kept.
    """
    return literal_column(str(int(rows)), Integer)


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
    engine = create_engine(url, pool_size=5, max_overflow=10)
    _keep_fresh(engine)
    return engine


def _keep_fresh(engine: Engine) -> None:
    """Ping a connection taken after it sat idle (see PING_AFTER_IDLE_SECONDS)."""
    event.listen(engine.pool, "connect", _fresh)
    event.listen(engine.pool, "checkin", _fresh)
    event.listen(engine.pool, "checkout", partial(_ping_if_idle, engine))


@lru_cache(maxsize=8)
def get_read_engine(url: str) -> Engine:
    """An engine for reads that need no transaction around them: on PostgreSQL its
    connections run each statement in a transaction of its own (autocommit), without the BEGIN
    and ROLLBACK round trips around it. What a reader sees does not change: at READ COMMITTED
    each statement takes a snapshot of its own anyway. SQLite's is `get_engine(url)` (its
    BEGIN IMMEDIATE, as every other connection's).

    On PostgreSQL it has a pool of its own (up to READ_POOL_SIZE + READ_POOL_OVERFLOW
    connections beside `get_engine(url)`'s). psycopg forgets every statement it prepared on a
    connection at each ROLLBACK, and sessions end every transaction they did not commit with
    one: on a shared pool, any read-only request undid the reads' prepared statements, and
    PostgreSQL planned them anew at each execution (the history lookup: 0.9 ms instead of 0.3;
    docs/benchmarks.md, issue 28). Autocommit connections never roll back."""
    if not url.startswith("postgresql"):
        return get_engine(url)
    engine = create_engine(
        url,
        pool_size=READ_POOL_SIZE,
        max_overflow=READ_POOL_OVERFLOW,
        isolation_level="AUTOCOMMIT",
    )
    _keep_fresh(engine)
    return engine


# The read engine's pool on PostgreSQL, per process (only the API makes one).
READ_POOL_SIZE = 5
READ_POOL_OVERFLOW = 5


# A connection opened or given back less than this long ago is trusted as it is: a busy
# worker's transactions follow each other closely, and a ping before each would be one more
# round trip per transaction (14 per pipeline). One idle for longer is pinged when taken, as
# `pool_pre_ping` would: after a database restart or a dropped connection, the pool opens a new
# connection (not pinged again: it was just opened) instead of failing the transaction. A server
# lost within this window fails one transaction, which the pool answers by dropping all its
# connections (a stage task retries it; the API answers 503).
PING_AFTER_IDLE_SECONDS = 1.0
_LAST_USED = "shipyard_last_used"


def _fresh(_dbapi_connection: Any, record: Any) -> None:
    """Opened or given back just now (`record.info` belongs to this DBAPI connection)."""
    record.info[_LAST_USED] = time.monotonic()


def _ping_if_idle(engine: Engine, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    last_used = record.info.get(_LAST_USED)
    if last_used is not None and time.monotonic() - last_used < PING_AFTER_IDLE_SECONDS:
        return
    try:
        engine.dialect.do_ping(dbapi_connection)
    except Exception as exc:  # the pool replaces the connection with a new one
        raise DisconnectionError("the database connection was lost") from exc


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


def core_connection(session: Session) -> Connection:
    """The session's connection, for a prebuilt Core statement: what the session holds pending
    is written first, as the ORM does before each of its own statements (autoflush)."""
    if session.autoflush:
        session.flush()
    return session.connection()


def sync_loaded(session: Session, model: type[Any], key: object, values: dict[str, Any]) -> None:
    """After a Core UPDATE of row `key` of `model`: the session's copy of that row, if it holds
    one, shows the new values (what an ORM UPDATE would have done, without its overhead)."""
    loaded = session.identity_map.get(session.identity_key(model, key))
    if loaded is not None:
        for name, value in values.items():
            set_committed_value(loaded, name, value)


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
