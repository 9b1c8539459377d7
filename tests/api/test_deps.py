"""The shared dependencies: the request's session goes back to the pool, whatever the route did,
also when a route's work and the session's close share one thread."""

from __future__ import annotations

import time
import uuid

import anyio
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session

from shipyard.api.deps import in_one_thread, read_in_one_thread
from shipyard.shared.db import get_engine
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
