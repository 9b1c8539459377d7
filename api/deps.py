"""Dependencies every route shares: settings, a database session, the publisher, the token check."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

import redis
from fastapi import Depends, Request
from sqlmodel import Session

from shipyard.shared.crypto import SecretBox
from shipyard.shared.db import get_engine
from shipyard.shared.events import Event
from shipyard.shared.services.workers import WorkersProbe
from shipyard.shared.settings import Settings

Publisher = Callable[[Event], None]


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    """One session per request; routes commit before they publish anything."""
    with Session(get_engine(settings.sqlalchemy_url), expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


# Sent by the `shipyard` CLI with every request, so that what it starts is recorded as the CLI's.
CLIENT_HEADER = "X-Shipyard-Client"


def client_of(request: Request) -> str:
    """How a request was made, as pipelines record it: `cli` (the shipyard CLI), else `api`."""
    return "cli" if request.headers.get(CLIENT_HEADER, "").lower() == "cli" else "api"


ClientDep = Annotated[str, Depends(client_of)]


def get_publisher(request: Request) -> Publisher:
    publisher: Publisher = request.app.state.publisher
    return publisher


PublisherDep = Annotated[Publisher, Depends(get_publisher)]


def get_secret_box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secret_box
    return box


SecretBoxDep = Annotated[SecretBox, Depends(get_secret_box)]


def get_broker_redis(request: Request) -> redis.Redis | None:
    """The broker's Redis (None when the tests replaced the broker)."""
    client: redis.Redis | None = request.app.state.broker_redis
    return client


BrokerRedisDep = Annotated[redis.Redis | None, Depends(get_broker_redis)]


def get_workers_probe(request: Request) -> WorkersProbe:
    """Who consumes each queue now (the broker's heartbeat keys)."""
    probe: WorkersProbe = request.app.state.workers_probe
    return probe


WorkersProbeDep = Annotated[WorkersProbe, Depends(get_workers_probe)]
