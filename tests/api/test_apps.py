"""Apps and environments: create, list, and the errors a client sees."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


def test_an_app_is_created_and_listed(client: TestClient) -> None:
    response = client.post("/v1/apps", json={"name": "web", "repo": "/srv/web", "path": "site"})

    assert response.status_code == 201
    created = response.json()
    assert {k: created[k] for k in ("name", "repo", "path", "builder")} == {
        "name": "web",
        "repo": "/srv/web",
        "path": "site",
        "builder": "local",
    }
    assert [a["name"] for a in client.get("/v1/apps").json()] == ["web"]
    assert client.get("/v1/apps/web").json()["id"] == created["id"]


def test_apps_are_listed_by_name(client: TestClient) -> None:
    for name in ("zeta", "alpha", "mid"):
        client.post("/v1/apps", json={"name": name, "repo": "/srv/x"})

    assert [a["name"] for a in client.get("/v1/apps").json()] == ["alpha", "mid", "zeta"]


def test_a_duplicate_app_is_409(client: TestClient) -> None:
    client.post("/v1/apps", json={"name": "web", "repo": "/srv/web"})

    response = client.post("/v1/apps", json={"name": "web", "repo": "/srv/other"})

    assert response.status_code == 409
    assert response.json() == {"detail": "app 'web' already exists"}


def test_an_unknown_app_is_404(client: TestClient) -> None:
    response = client.get("/v1/apps/nope")

    assert response.status_code == 404
    assert response.json() == {"detail": "app 'nope' not found"}


def test_an_environment_is_created_and_listed(client: TestClient, staging: str) -> None:
    response = client.post(
        "/v1/apps/web/environments",
        json={"name": "production", "health_path": "/healthz", "health_timeout": 5},
    )

    assert response.status_code == 201
    assert (response.json()["health_path"], response.json()["health_timeout"]) == ("/healthz", 5)
    listed = client.get("/v1/apps/web/environments").json()
    assert [e["name"] for e in listed] == ["production", "staging"]


def test_a_duplicate_environment_is_409(client: TestClient, staging: str) -> None:
    response = client.post("/v1/apps/web/environments", json={"name": "staging"})

    assert response.status_code == 409
    assert response.json() == {"detail": "environment 'staging' of app 'web' already exists"}


def test_the_same_environment_name_in_two_apps_is_fine(client: TestClient, staging: str) -> None:
    client.post("/v1/apps", json={"name": "api", "repo": "/srv/api"})

    response = client.post("/v1/apps/api/environments", json={"name": "staging"})

    assert response.status_code == 201


def test_an_environment_of_an_unknown_app_is_404(client: TestClient) -> None:
    response = client.post("/v1/apps/nope/environments", json={"name": "staging"})

    assert response.status_code == 404
    assert response.json() == {"detail": "app 'nope' not found"}


def test_an_unknown_environment_is_404(client: TestClient, staging: str) -> None:
    for path in ("/config", "/releases", "/current"):
        response = client.get(f"/v1/apps/web/environments/nope{path}")

        assert response.status_code == 404
        assert response.json() == {"detail": "environment 'nope' of app 'web' not found"}


def test_nothing_live_yet_is_404(client: TestClient, staging: str) -> None:
    response = client.get(f"{staging}/current")

    assert response.status_code == 404
    assert response.json() == {"detail": "nothing is live in web/staging yet"}


@pytest.mark.parametrize("name", ["../etc", "a;rm -rf", "UPPER", "-x", "a b", "a" * 64])
def test_an_invalid_app_name_is_422_with_a_string_detail(client: TestClient, name: str) -> None:
    response = client.post("/v1/apps", json={"name": name, "repo": "/srv/web"})

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert detail.startswith("name: ")
    assert client.get("/v1/apps").json() == []


@pytest.mark.parametrize("name", ["../etc", "a;rm -rf", "UPPER"])
def test_an_invalid_environment_name_is_422(client: TestClient, staging: str, name: str) -> None:
    response = client.post("/v1/apps/web/environments", json={"name": name})

    assert response.status_code == 422
    assert response.json()["detail"].startswith("name: ")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "web", "repo": "/srv/web", "admin": True}, "admin: Extra inputs"),
        ({"name": "web", "repo": "--upload-pack=id"}, "repo: "),
        ({"name": "web", "repo": "/srv/web", "path": "../../etc"}, "path: "),
        ({"name": "web"}, "repo: Field required"),
    ],
)
def test_other_invalid_app_bodies_are_422(
    client: TestClient, body: dict[str, object], field: str
) -> None:
    response = client.post("/v1/apps", json=body)

    assert response.status_code == 422
    assert field in response.json()["detail"]


def test_a_body_that_is_not_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/v1/apps", content=b"{not json", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)


def test_credentials_in_a_repository_url_are_never_shown(client: TestClient) -> None:
    created = client.post(
        "/v1/apps",
        json={"name": "private", "repo": "https://deploy:s3cr3t-t0ken@git.example/a.git"},
    )

    assert created.status_code == 201
    assert created.json()["repo"] == "https://git.example/a.git"
    assert "s3cr3t-t0ken" not in client.get("/v1/apps").text


def test_an_app_is_updated_field_by_field_and_bad_changes_are_refused(
    client: TestClient,
) -> None:
    client.post("/v1/apps", json={"name": "web", "repo": "/srv/web", "builder": "docker"})

    builder = client.patch("/v1/apps/web", json={"builder": "python"})
    moved = client.patch(
        "/v1/apps/web", json={"repo": "https://git.example.com/web.git", "path": "app"}
    )
    nothing = client.patch("/v1/apps/web", json={})
    unknown_builder = client.patch("/v1/apps/web", json={"builder": "heroku"})
    relative = client.patch("/v1/apps/web", json={"repo": "srv/web"})
    name = client.patch("/v1/apps/web", json={"name": "api"})
    missing = client.patch("/v1/apps/nope", json={"builder": "local"})

    assert builder.status_code == 200 and builder.json()["builder"] == "python"
    assert moved.json()["repo"] == "https://git.example.com/web.git"
    assert (moved.json()["path"], moved.json()["builder"]) == ("app", "python")
    assert nothing.status_code == 422 and "nothing to change" in nothing.text
    assert unknown_builder.status_code == 422 and relative.status_code == 422
    assert name.status_code == 422  # an app is not renamed (its URLs carry its name)
    assert missing.status_code == 404
    assert client.get("/v1/apps/web").json()["path"] == "app"
