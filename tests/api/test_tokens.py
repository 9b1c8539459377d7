"""Scoped API tokens: shown once, stored hashed, and each endpoint class allows only its scopes."""

from __future__ import annotations

import sqlite3

import pytest
from fastapi.testclient import TestClient

from shipyard.shared.settings import Settings


@pytest.fixture
def world(client: TestClient) -> TestClient:
    """An app `web` with staging and production environments, created by the admin."""
    assert client.post("/v1/apps", json={"name": "web", "repo": "/srv/web"}).status_code == 201
    for env in ("staging", "production"):
        assert client.post("/v1/apps/web/environments", json={"name": env}).status_code == 201
    return client


def _token(client: TestClient, *scopes: str) -> str:
    response = client.post("/v1/tokens", json={"name": "ci", "scopes": list(scopes)})
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def _as(client: TestClient, token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_is_shown_once_and_stored_only_as_a_hash(
    world: TestClient, settings: Settings
) -> None:
    token = _token(world, "deploy:staging")

    listed = world.get("/v1/tokens").json()

    assert token.startswith("shp_") and len(token) > 40
    assert [t["scopes"] for t in listed] == [["deploy:staging"]]
    assert "token" not in listed[0] and token not in str(listed)
    raw = sqlite3.connect(settings.data_dir / "shipyard.db")
    dump = "\n".join(raw.iterdump())
    raw.close()
    assert token not in dump


def test_a_deploy_token_deploys_its_environment_only(world: TestClient) -> None:
    headers = _as(world, _token(world, "deploy:staging"))

    def call(method: str, path: str, json: object = None) -> int:
        return world.request(method, path, json=json, headers=headers).status_code

    assert call("GET", "/v1/apps") == 200
    assert call("GET", "/v1/apps/web/environments/production/config") == 200
    assert call("POST", "/v1/apps/web/pipelines", {"environment": "staging"}) == 202
    assert call("PATCH", "/v1/apps/web/environments/staging/config", {"vars": {"A": "1"}}) == 200
    assert call("POST", "/v1/apps/web/pipelines", {"environment": "production"}) == 403
    assert call("PATCH", "/v1/apps/web/environments/production/config", {"vars": {"A": "1"}}) == 403
    assert call("POST", "/v1/apps/web/environments/production/rollback", {}) == 403
    assert call("POST", "/v1/apps/web/promotions", {"from": "staging", "to": "production"}) == 403
    # Promoting into its own environment passes auth (then 409: nothing live to promote).
    assert call("POST", "/v1/apps/web/promotions", {"from": "production", "to": "staging"}) == 409
    assert call("POST", "/v1/apps", {"name": "other", "repo": "/srv"}) == 403
    assert call("POST", "/v1/apps/web/environments", {"name": "qa"}) == 403
    assert call("POST", "/v1/gc", {}) == 403
    assert call("GET", "/v1/tokens") == 403
    assert call("POST", "/v1/tokens", {"name": "x", "scopes": ["admin"]}) == 403


def test_a_read_token_reads_and_changes_nothing(world: TestClient) -> None:
    headers = _as(world, _token(world, "read"))

    assert world.get("/v1/apps/web", headers=headers).status_code == 200
    forbidden = world.post(
        "/v1/apps/web/pipelines", json={"environment": "staging"}, headers=headers
    )
    assert forbidden.status_code == 403
    assert "deploy:staging" in forbidden.json()["detail"]


def test_a_token_used_again_reads_a_pipeline_and_the_history_at_once(
    world: TestClient,
) -> None:
    # Used within the minute, the token's lookup writes nothing: its transaction must still end
    # before the route reads on a connection of its own (SQLite: it would wait for the lock).
    headers = _as(world, _token(world, "read"))
    started = world.post("/v1/apps/web/pipelines", json={"environment": "staging"})
    pipeline = f"/v1/pipelines/{started.json()['id']}"
    history = "/v1/apps/web/environments/staging/history?at=2026-01-01T00:00:00Z"

    for _ in range(3):
        assert world.get(pipeline, headers=headers).status_code == 200
        assert world.get(history, headers=headers).status_code == 404  # nothing live then
        assert world.get("/v1/apps/web", headers=headers).status_code == 200


def test_an_admin_scoped_token_may_do_everything(world: TestClient) -> None:
    headers = _as(world, _token(world, "admin"))

    assert (
        world.post("/v1/apps", json={"name": "b", "repo": "/r"}, headers=headers).status_code == 201
    )
    assert world.get("/v1/tokens", headers=headers).status_code == 200


def test_a_revoked_token_stops_working_at_once(world: TestClient) -> None:
    token = _token(world, "read")
    token_id = world.get("/v1/tokens").json()[0]["id"]
    assert world.get("/v1/apps", headers=_as(world, token)).status_code == 200

    assert world.delete(f"/v1/tokens/{token_id}").json()["revoked_at"] is not None

    refused = world.get("/v1/apps", headers=_as(world, token))
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]


@pytest.mark.parametrize("scope", ["deploy:", "deploy:../x", "root", "deploy:Staging", ""])
def test_unknown_scopes_are_refused(world: TestClient, scope: str) -> None:
    response = world.post("/v1/tokens", json={"name": "x", "scopes": [scope]})
    assert response.status_code == 422
