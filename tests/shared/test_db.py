"""Engines: embedded mode refuses, clearly, an SQLite too old for the stages' statements; a
PostgreSQL connection is pinged when taken only after it sat idle, and a lost one is replaced."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from shared import db
from shared.db import StatementCounter, get_engine, require_sqlite_returning, session_scope
from shared.exceptions import ConfigurationError


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


def test_a_connection_idle_past_the_threshold_is_pinged_and_replaced_when_lost(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # every checkout counts as idle
    first = _backend_pid(postgres_url)
    _terminate(postgres_url, first)
    # The pool's ping finds the connection dead and opens another: no error reaches the caller.
    second = _backend_pid(postgres_url)
    assert second != first


def test_a_connection_given_back_moments_ago_is_taken_without_a_ping(postgres_url: str) -> None:
    engine = get_engine(postgres_url)
    _backend_pid(postgres_url)  # the connection exists and was given back just now
    with StatementCounter(engine) as counter:
        _backend_pid(postgres_url)
    assert counter.statements == ["SELECT pg_backend_pid()"], counter.statements


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
