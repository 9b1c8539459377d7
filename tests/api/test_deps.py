"""The shared dependencies: the request's session goes back to the pool, whatever the route did,
also when a route's work and the session's close share one thread."""

from __future__ import annotations

import time
import uuid

import anyio
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text
from sqlmodel import Session

from shipyard.api.deps import in_one_thread, read_in_one_thread
from shipyard.shared import db
from shipyard.shared.db import get_engine, get_read_engine
from shipyard.shared.settings import Settings


def test_every_request_gives_its_connection_back(
    client: TestClient, settings: Settings, staging: str
) -> None:
    pool = get_engine(settings.sqlalchemy_url).pool
    assert client.get(staging).status_code == 200
    assert client.get(f"/v1/pipelines/{uuid.uuid4()}").status_code == 404  # raised in the route
    assert client.post("/v1/apps", json={"name": "web", "repo": "/srv/web"}).status_code == 409
    created = client.post("/v1/apps/web/pipelines", json={"environment": "staging"})
    assert created.status_code == 202  # in one thread with its session's close
    assert client.get(f"/v1/pipelines/{created.json()['id']}").status_code == 200  # no session
    at = {"at": "2026-11-24T14:00:00Z"}
    assert client.get(f"{staging}/history", params=at).status_code == 404  # raised in the read
    assert pool.checkedout() == 0  # type: ignore[attr-defined]


def test_a_cancelled_request_still_waits_for_its_connection_to_go_back(
    settings: Settings,
) -> None:
    engine = get_engine(settings.sqlalchemy_url)
    session = Session(engine)

    def slow_work() -> None:
        session.execute(text("SELECT 1"))  # holds a connection from here
        time.sleep(0.2)

    def slow_read(connection: object) -> None:
        time.sleep(0.2)

    async def cancelled_midway() -> float:
        began = time.monotonic()
        with anyio.move_on_after(0.02):
            await in_one_thread(session, slow_work)
        with anyio.move_on_after(0.02):
            await read_in_one_thread(engine, slow_read)
        return time.monotonic() - began

    assert anyio.run(cancelled_midway) >= 0.4  # each waited for its thread
    assert not session.in_transaction()
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_a_read_on_a_connection_the_server_dropped_is_made_again_on_a_new_one(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)  # never pinged when taken
    engine = get_read_engine(postgres_url)

    def backend(connection: Connection) -> int:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())

    try:
        with engine.connect() as connection:
            dropped = backend(connection)
        dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (dropped,))
        served_by = anyio.run(read_in_one_thread, engine, backend)
    finally:
        engine.dispose()
    assert served_by != dropped
