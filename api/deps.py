"""Dependencies every route shares: settings, a database session, the publisher, the token check.

The ones that only read the app's state are `async def`: FastAPI runs a plain `def` dependency
in its thread pool, and each such hop cost a GET about 0.15 ms of the API's CPU under load
(docs/benchmarks.md, issue 28).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated

import anyio
import anyio.to_thread
import redis
from fastapi import Depends, Request
from sqlmodel import Session

from shipyard.shared.crypto import SecretBox
from shipyard.shared.db import get_engine
from shipyard.shared.events import Event
from shipyard.shared.services.workers import WorkersProbe
from shipyard.shared.settings import Settings

Publisher = Callable[[Event], None]


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_session(settings: SettingsDep) -> AsyncIterator[Session]:
    """One session per request; routes commit before they publish anything.

    Made on the event loop (a session connects on its first statement, in the route's thread);
    closed (its ROLLBACK and the connection's return to the pool) in the thread pool, shielded
    from a cancelled request so that the connection always goes back.
    """
    session = Session(get_engine(settings.sqlalchemy_url), expire_on_commit=False)
    try:
        yield session
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(session.close)


SessionDep = Annotated[Session, Depends(get_session)]


# Sent by the `shipyard` CLI with every request, so that what it starts is recorded as the CLI's.
CLIENT_HEADER = "X-Shipyard-Client"


async def client_of(request: Request) -> str:
    """How a request was made, as pipelines record it: `cli` (the shipyard CLI), else `api`."""
    return "cli" if request.headers.get(CLIENT_HEADER, "").lower() == "cli" else "api"


ClientDep = Annotated[str, Depends(client_of)]


async def get_publisher(request: Request) -> Publisher:
    publisher: Publisher = request.app.state.publisher
    return publisher


PublisherDep = Annotated[Publisher, Depends(get_publisher)]


async def get_secret_box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secret_box
    return box


SecretBoxDep = Annotated[SecretBox, Depends(get_secret_box)]


async def get_broker_redis(request: Request) -> redis.Redis | None:
    """The broker's Redis (None when the tests replaced the broker)."""
    client: redis.Redis | None = request.app.state.broker_redis
    return client


BrokerRedisDep = Annotated[redis.Redis | None, Depends(get_broker_redis)]


async def get_workers_probe(request: Request) -> WorkersProbe:
    """Who consumes each queue now (the broker's heartbeat keys)."""
    probe: WorkersProbe = request.app.state.workers_probe
    return probe


WorkersProbeDep = Annotated[WorkersProbe, Depends(get_workers_probe)]
