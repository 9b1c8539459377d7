"""The shared dependencies: the request's session goes back to the pool, whatever the route did."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from shipyard.shared.db import get_engine
from shipyard.shared.settings import Settings


def test_every_request_gives_its_connection_back(
    client: TestClient, settings: Settings, staging: str
) -> None:
    pool = get_engine(settings.sqlalchemy_url).pool
    assert client.get(staging).status_code == 200
    assert client.get(f"/v1/pipelines/{uuid.uuid4()}").status_code == 404  # raised in the route
    assert client.post("/v1/apps", json={"name": "web", "repo": "/srv/web"}).status_code == 409
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
