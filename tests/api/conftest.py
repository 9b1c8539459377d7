"""The API in-process: real routes and a migrated SQLite file, a list in place of the broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from shipyard.api.main import create_app
from shipyard.shared.events import Event
from shipyard.shared.settings import Settings
from tests.embedded import _no_shipyard_environment, events, schema_template, settings


@pytest.fixture
def anonymous(settings: Settings, events: list[Event]) -> Iterator[TestClient]:
    """A client without a token, with the app's lifespan running."""
    with TestClient(create_app(settings, publisher=events.append)) as client:
        yield client


@pytest.fixture
def client(anonymous: TestClient, settings: Settings) -> TestClient:
    """A client that sends the admin token."""
    anonymous.headers["Authorization"] = f"Bearer {settings.api_token()}"
    return anonymous


@pytest.fixture
def staging(client: TestClient) -> str:
    """An app `web` with an environment `staging`; returns the environment's URL."""
    assert client.post("/v1/apps", json={"name": "web", "repo": "/srv/web"}).status_code == 201
    response = client.post("/v1/apps/web/environments", json={"name": "staging"})
    assert response.status_code == 201
    return "/v1/apps/web/environments/staging"
