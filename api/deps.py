"""Dependencies every route shares: settings, a database session, the publisher, the token check.

The ones that only read the app's state are `async def`: FastAPI runs a plain `def` dependency
in its thread pool, and each such hop cost a GET about 0.15 ms of the API's CPU under load
(docs/benchmarks.md, issue 28).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar

import anyio
import anyio.to_thread
import redis
from fastapi import Depends, Request
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from shipyard.shared.crypto import SecretBox
from shipyard.shared.db import get_engine, get_read_engine
from shipyard.shared.events import Event
from shipyard.shared.services.workers import WorkersProbe
from shipyard.shared.settings import Settings

Publisher = Callable[[Event], None]
_T = TypeVar("_T")


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_session(settings: SettingsDep) -> AsyncIterator[Session]:
    """One session per request; routes commit before they publish anything.

    Made on the event loop (a session connects on its first statement, in the route's thread);
    closed (its ROLLBACK and the connection's return to the pool) in the thread pool, shielded
    from a cancelled request so that the connection always goes back. A route that ran in
    `in_one_thread` has closed it already: nothing is left to do off the event loop.
    """
    session = Session(get_engine(settings.sqlalchemy_url), expire_on_commit=False)
    try:
        yield session
    finally:
        if session.in_transaction():
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(session.close)
        else:
            session.close()  # no transaction, so no connection: nothing blocks


SessionDep = Annotated[Session, Depends(get_session)]


async def in_one_thread(session: Session, work: Callable[[], _T]) -> _T:
    """`work` in the thread pool, then `session` closed in that same thread: one thread hop
    for an `async def` route where a plain `def` one makes two (the route's, then the close's;
    docs/benchmarks.md, issue 28). A cancelled request still waits for both: anyio does not
    abandon a worker thread, so the connection always goes back to the pool."""

    def work_then_close() -> _T:
        try:
            return work()
        finally:
            session.close()

    return await anyio.to_thread.run_sync(work_then_close)


async def get_store(settings: SettingsDep) -> Engine:
    """The store's engine for reads, for a route that reads on a Core connection
    (`read_in_one_thread`): on PostgreSQL, each statement in a transaction of its own."""
    return get_read_engine(settings.sqlalchemy_url)


StoreDep = Annotated[Engine, Depends(get_store)]


async def read_in_one_thread(store: Engine, read: Callable[[Connection], _T]) -> _T:
    """`read` on one of the store's connections, in one thread-pool hop: the connection taken,
    read on, and given back in that thread. For a route whose whole answer is a read: no
    session, whose bookkeeping cost more than the statement (docs/benchmarks.md, issue 28). A
    cancelled request still waits for the thread, so the connection always goes back."""

    def connect_and_read() -> _T:
        try:
            with store.connect() as connection:
                return read(connection)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        # The server dropped the connection (a restart, an idle timeout) while it sat in the
        # pool, used too lately to be pinged: the pool has let all of its connections go, and
        # a read is made again at no risk, on a new one. The reads' pool is not the sessions',
        # so no failed session has cleared it beforehand.
        with store.connect() as connection:
            return read(connection)

    return await anyio.to_thread.run_sync(connect_and_read)


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
