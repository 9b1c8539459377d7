"""The live build log: lines as the build writes them, read on from a position."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import fakeredis
import pytest
from fastapi.testclient import TestClient

from shipyard.api.main import create_app
from shipyard.shared import build_stream
from shipyard.shared.events import Event
from shipyard.shared.settings import Settings


@pytest.fixture
def broker() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def with_broker(
    settings: Settings, events: list[Event], broker: fakeredis.FakeRedis
) -> Iterator[TestClient]:
    app = create_app(settings, publisher=events.append)
    with TestClient(app) as client:
        app.state.broker_redis = broker  # the broker a worker writes the live view to
        client.headers["Authorization"] = f"Bearer {settings.api_token()}"
        yield client


def _staging(client: TestClient) -> None:
    client.post("/v1/apps", json={"name": "web", "repo": "/srv/web"})
    client.post("/v1/apps/web/environments", json={"name": "staging"})


def test_the_lines_written_so_far_then_only_the_new_ones(
    with_broker: TestClient, broker: fakeredis.FakeRedis
) -> None:
    _staging(with_broker)
    pipeline = with_broker.post("/v1/apps/web/pipelines", json={"environment": "staging"}).json()
    key = build_stream.stream_key("shipyard", uuid.UUID(pipeline["id"]))
    build_stream.append(broker, key, "-----> Building\n")
    url = f"/v1/pipelines/{pipeline['id']}/log/live"

    first = with_broker.get(url).json()
    build_stream.append(broker, key, "Collecting flask\n")
    second = with_broker.get(url, params={"after": first["after"]}).json()

    assert first["lines"] == ["-----> Building\n"]
    assert second["lines"] == ["Collecting flask\n"]
    assert with_broker.get(url, params={"after": second["after"]}).json()["lines"] == []


def test_an_unknown_pipeline_is_404_and_a_bad_position_422(with_broker: TestClient) -> None:
    _staging(with_broker)
    assert with_broker.get(f"/v1/pipelines/{uuid.uuid4()}/log/live").status_code == 404
    pipeline = with_broker.post("/v1/apps/web/pipelines", json={"environment": "staging"}).json()
    bad = with_broker.get(f"/v1/pipelines/{pipeline['id']}/log/live", params={"after": "x"})
    assert bad.status_code == 422
