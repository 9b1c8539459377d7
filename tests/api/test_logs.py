"""`/logs` with the router's lines: read from the broker's stream of the environment (a fake
broker here; a real router and Redis in tests/integration/test_router_log.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from shipyard.api.main import create_app
from shipyard.shared import router_log
from shipyard.shared.db import get_engine
from shipyard.shared.events import Event
from shipyard.shared.services import apps
from shipyard.shared.settings import Settings
from tests.api.test_environments import SECRET, make_live

STAGING = "/v1/apps/web/environments/staging"


@pytest.fixture
def broker() -> Iterator[fakeredis.FakeRedis]:
    client = fakeredis.FakeRedis()
    yield client
    client.close()


@pytest.fixture
def api(
    settings: Settings, events: list[Event], broker: fakeredis.FakeRedis, tmp_path: Path
) -> Iterator[TestClient]:
    """web/staging live with a web process that printed two lines, and a secret config value."""
    with TestClient(create_app(settings, publisher=events.append, broker=broker)) as client:
        client.headers["Authorization"] = f"Bearer {settings.api_token()}"
        assert client.post("/v1/apps", json={"name": "web", "repo": "/srv/web"}).status_code == 201
        assert client.post("/v1/apps/web/environments", json={"name": "staging"}).status_code == 201
        client.patch(
            f"{STAGING}/config",
            json={"vars": {"DB_PASSWORD": SECRET}, "secrets": ["DB_PASSWORD"], "deploy": False},
        )
        web = tmp_path / "web.log"
        web.write_text("booting\nlistening\n")
        make_live(settings, [{"type": "web", "log": str(web)}])
        yield client


def route(settings: Settings, broker: fakeredis.FakeRedis, *lines: str) -> None:
    """Lines of web/staging as the router agent appends them."""
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        app = apps.get_app(session=session, name="web")
        environment = apps.get_environment(session=session, app=app, name="staging")
    router_log.append(broker, settings.broker_namespace, {environment.id: list(lines)})


def test_the_router_lines_follow_the_processes_labelled_and_redacted(
    api: TestClient, settings: Settings, broker: fakeredis.FakeRedis
) -> None:
    route(
        settings,
        broker,
        'at=info method=GET path="/" dyno=web.1 status=200',
        f'at=info method=GET path="/login/{SECRET}" dyno=web.1 status=302',
    )

    response = api.get(f"{STAGING}/logs", params={"lines": 1})

    assert response.status_code == 200
    assert response.text == (
        "web.1: listening\n"
        'router: at=info method=GET path="/login/<redacted>" dyno=web.1 status=302\n'
    )


def test_process_router_gives_the_router_lines_alone(
    api: TestClient, settings: Settings, broker: fakeredis.FakeRedis
) -> None:
    route(settings, broker, 'at=info method=GET path="/" dyno=web.1 status=200')

    routed = api.get(f"{STAGING}/logs", params={"process": "router"})
    web = api.get(f"{STAGING}/logs", params={"process": "web"})

    assert routed.text == 'router: at=info method=GET path="/" dyno=web.1 status=200\n'
    assert web.text == "web.1: booting\nweb.1: listening\n"


def test_a_release_with_a_router_process_type_keeps_it(
    api: TestClient, settings: Settings, broker: fakeredis.FakeRedis, tmp_path: Path
) -> None:
    own = tmp_path / "router.log"
    own.write_text("the app's own router process\n")
    make_live(settings, [{"type": "router", "log": str(own)}])
    route(settings, broker, "at=info method=GET")

    response = api.get(f"{STAGING}/logs", params={"process": "router"})

    assert response.text == "router.1: the app's own router process\n"


def test_without_a_broker_there_are_no_router_lines(
    client: TestClient, staging: str, settings: Settings, tmp_path: Path
) -> None:
    web = tmp_path / "web.log"
    web.write_text("listening\n")
    make_live(settings, [{"type": "web", "log": str(web)}])

    everything = client.get(f"{staging}/logs")
    routed = client.get(f"{staging}/logs", params={"process": "router"})

    assert everything.text == "web.1: listening\n"
    assert routed.status_code == 503 and "broker, which is unavailable" in routed.text
