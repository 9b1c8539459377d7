"""Authentication: every endpoint but /health needs the admin token."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from shipyard.shared.settings import Settings

PROTECTED = [
    ("GET", "/v1/apps"),
    ("POST", "/v1/apps"),
    ("GET", "/v1/apps/web"),
    ("GET", "/v1/apps/web/environments"),
    ("GET", "/v1/apps/web/environments/staging/config"),
    ("PATCH", "/v1/apps/web/environments/staging/config"),
    ("GET", "/v1/apps/web/environments/staging/releases"),
    ("POST", "/v1/apps/web/pipelines"),
    ("GET", "/v1/pipelines/00000000-0000-0000-0000-000000000000"),
]


def test_health_answers_without_a_token(anonymous: TestClient) -> None:
    response = anonymous.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "mode": "embedded"}


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_without_a_token_every_other_endpoint_is_401(
    anonymous: TestClient, method: str, path: str
) -> None:
    response = anonymous.request(method, path, json={})

    assert response.status_code == 401
    assert response.json() == {"detail": "missing bearer token (Authorization: Bearer <token>)"}
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_a_wrong_token_is_401(
    anonymous: TestClient, settings: Settings, method: str, path: str
) -> None:
    wrong = settings.api_token() + "x"

    response = anonymous.request(
        method, path, json={}, headers={"Authorization": f"Bearer {wrong}"}
    )

    assert response.status_code == 401
    assert response.json()["detail"] in ("invalid token", "invalid or revoked token")


def test_a_basic_auth_header_is_not_a_bearer_token(
    anonymous: TestClient, settings: Settings
) -> None:
    response = anonymous.get("/v1/apps", headers={"Authorization": f"Basic {settings.api_token()}"})

    assert response.status_code == 401


def test_the_admin_token_is_accepted(client: TestClient) -> None:
    response = client.get("/v1/apps")

    assert response.status_code == 200
    assert response.json() == []
