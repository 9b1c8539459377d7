"""Engines: embedded mode refuses, clearly, an SQLite too old for the stages' statements; a
PostgreSQL connection is pinged when taken only after it sat idle, and a lost one is replaced;
reads on PostgreSQL go without BEGIN and ROLLBACK."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

from shipyard.shared import db
from shipyard.shared.db import (
    fixed_limit,
    get_engine,
    get_read_engine,
    require_sqlite_returning,
    session_scope,
)
from shipyard.shared.exceptions import ConfigurationError
from shipyard.shared.models import Pipeline


def test_an_sqlite_without_update_returning_is_refused_with_what_to_do() -> None:
    with pytest.raises(
        ConfigurationError, match=r"SQLite 3\.35 or newer; this Python's is 3\.31\.1"
    ):
        require_sqlite_returning((3, 31, 1))


def test_an_sqlite_with_update_returning_is_accepted() -> None:
    require_sqlite_returning((3, 35, 0))
    require_sqlite_returning((3, 45, 2))


def _backend_pid(url: str) -> int:
    with session_scope(url) as session:
        return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(postgres_url: str, pid: int) -> None:
    dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _count_pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The pings the pool sends from now on (each one's DBAPI connection), still sent."""
    pings: list[object] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return pings


def test_a_connection_idle_past_the_threshold_is_pinged_and_replaced_when_lost(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = _count_pings(get_engine(postgres_url), monkeypatch)
    first = _backend_pid(postgres_url)
    assert pings == [], "a connection just opened is not pinged"
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # every checkout counts as idle
    _terminate(postgres_url, first)
    # The ping finds the connection dead; the pool opens another (pinged too at this threshold,
    # and alive), and no error reaches the caller.
    second = _backend_pid(postgres_url)
    assert second != first
    assert len(pings) == 2 and pings[0] is not pings[1]


def test_a_connection_given_back_moments_ago_is_taken_without_a_ping(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = get_engine(postgres_url)
    first = _backend_pid(postgres_url)  # the connection exists and was given back just now
    pings = _count_pings(engine, monkeypatch)
    assert _backend_pid(postgres_url) == first
    assert pings == []
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # the same, once it counts as idle
    assert _backend_pid(postgres_url) == first
    assert len(pings) == 1


def test_a_connection_lost_within_the_threshold_fails_one_transaction_only(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)  # never pinged
    first = _backend_pid(postgres_url)
    _terminate(postgres_url, first)
    with pytest.raises(OperationalError):
        _backend_pid(postgres_url)
    # The failure invalidated the pool: the next transaction runs on a new connection.
    assert _backend_pid(postgres_url) != first


def test_a_read_connection_sends_no_begin_and_no_rollback_on_postgresql(
    postgres_url: str,
) -> None:
    engine = get_read_engine(postgres_url)
    sent: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        sent.append(statement.split()[0].upper())

    with engine.connect() as warm:  # a pooled connection, so that no connect-time query shows
        warm.execute(text("SELECT 1"))
    event.listen(engine, "before_cursor_execute", record)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            in_transaction = connection.connection.driver_connection.info.transaction_status  # type: ignore[union-attr]
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert sent == ["SELECT"]
    assert in_transaction == psycopg.pq.TransactionStatus.IDLE  # autocommit: none left open
    assert engine.pool is not get_engine(postgres_url).pool  # a pool of its own
    with get_engine(
        postgres_url
    ).connect() as writer:  # given back as it was taken: in a transaction
        writer.execute(text("SELECT 1"))
        assert writer.connection.driver_connection.info.transaction_status == (  # type: ignore[union-attr]
            psycopg.pq.TransactionStatus.INTRANS
        )


def test_the_reads_keep_their_prepared_statements_when_a_session_rolls_back(
    postgres_url: str,
) -> None:
    # psycopg forgets a connection's prepared statements at each ROLLBACK: a session's
    # read-only transaction on a shared pool would undo them.
    reads, sessions = get_read_engine(postgres_url), get_engine(postgres_url)
    lookup = text("SELECT count(*) FROM pg_class WHERE relname = :name")
    try:
        with reads.connect() as connection:
            for _ in range(6):  # prepared from the fifth execution on (psycopg's threshold)
                connection.execute(lookup, {"name": "pg_type"})
            reader = connection.connection.driver_connection
        with session_scope(postgres_url) as session:  # a read-only session, ended by ROLLBACK
            session.execute(text("SELECT 1"))
            session.rollback()
        with reads.connect() as connection:
            assert connection.connection.driver_connection is reader  # the same, from its pool
            prepared = connection.execute(
                text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE :s"),
                {"s": "%relname%"},
            ).scalar_one()
    finally:
        reads.dispose()
        sessions.dispose()
    assert prepared == 1


def test_a_read_connection_to_sqlite_keeps_its_transaction(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'read.db'}"
    assert get_read_engine(url) is get_engine(url)


def test_a_fixed_limit_is_part_of_the_statement_text_not_a_parameter() -> None:
    statement = select(Pipeline.id).order_by(Pipeline.created_at).limit(fixed_limit(10))
    on_postgresql = statement.compile(dialect=postgresql.dialect())
    assert str(on_postgresql).rstrip().endswith("LIMIT 10"), str(on_postgresql)
    assert on_postgresql.params == {}
    on_sqlite = str(statement.compile(dialect=sqlite.dialect()))  # SQLite adds `OFFSET ?` (0)
    assert "LIMIT 10 " in on_sqlite and "LIMIT ?" not in on_sqlite, on_sqlite


def test_a_fixed_limit_limits(tmp_path: Path) -> None:
    engine = get_engine(f"sqlite:///{tmp_path / 'limit.db'}")
    with engine.connect() as connection:
        rows = connection.execute(
            select(text("value"))
            .select_from(text("(SELECT 1 AS value UNION ALL SELECT 2)"))
            .limit(fixed_limit(1))
        ).all()
    engine.dispose()
    assert len(rows) == 1
