"""Config over the API: set and unset vars, secrets never shown, a release when one is live."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from shipyard.shared.db import get_engine
from shipyard.shared.events import ArtifactBuilt, Event
from shipyard.shared.models import App, Environment
from shipyard.shared.services import apps, deployments, tokens
from shipyard.shared.settings import Settings
from tests.shared.factories import make_artifact, make_release

SECRET = "hunter2-database-password"


def _make_live(settings: Settings) -> str:
    """Put a release of web/staging live, as a finished run stage would have; its artifact id."""
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        app: App = apps.get_app(session=session, name="web")
        environment: Environment = apps.get_environment(session=session, app=app, name="staging")
        artifact = make_artifact(session, app)
        artifact_id = artifact.id
        release = make_release(session, app, environment, artifact)
        assert release.pipeline_id is not None
        deployment = deployments.begin_deployment(
            session=session, pipeline_id=release.pipeline_id, release=release, cause="deploy"
        )
        assert deployment is not None
        deployments.go_live(session=session, deployment=deployment, processes=[])
        session.commit()
    return artifact_id


def test_a_new_environment_has_an_empty_config(client: TestClient, staging: str) -> None:
    response = client.get(f"{staging}/config")

    assert response.status_code == 200
    assert response.json() == {
        "version": 1,
        "vars": {},
        "secrets": [],
        "pipeline_id": None,
        "live_version": None,
    }


def test_patch_sets_vars_as_a_new_version(client: TestClient, staging: str) -> None:
    response = client.patch(f"{staging}/config", json={"vars": {"DEBUG": "1", "REGION": "eu"}})

    assert response.status_code == 200
    assert response.json()["version"] == 2
    assert response.json()["vars"] == {"DEBUG": "1", "REGION": "eu"}
    assert client.get(f"{staging}/config").json()["vars"] == {"DEBUG": "1", "REGION": "eu"}


def test_null_unsets_a_var(client: TestClient, staging: str) -> None:
    client.patch(f"{staging}/config", json={"vars": {"DEBUG": "1", "REGION": "eu"}})

    response = client.patch(f"{staging}/config", json={"vars": {"DEBUG": None}})

    assert response.json()["vars"] == {"REGION": "eu"}
    assert response.json()["version"] == 3


def test_secrets_are_shown_redacted_and_their_value_never_appears(
    client: TestClient, staging: str
) -> None:
    patched = client.patch(
        f"{staging}/config",
        json={
            "vars": {"DATABASE_PASSWORD": SECRET, "DEBUG": "1"},
            "secrets": ["DATABASE_PASSWORD"],
        },
    )
    shown = client.get(f"{staging}/config")

    for response in (patched, shown):
        assert response.status_code == 200
        assert response.json()["vars"] == {"DATABASE_PASSWORD": "<redacted>", "DEBUG": "1"}
        assert response.json()["secrets"] == ["DATABASE_PASSWORD"]
        assert SECRET not in response.text


def test_an_unchanged_patch_keeps_the_version(
    client: TestClient, staging: str, settings: Settings, events: list[Event]
) -> None:
    _make_live(settings)
    first = client.patch(f"{staging}/config", json={"vars": {"DEBUG": "1"}}).json()
    events.clear()

    again = client.patch(f"{staging}/config", json={"vars": {"DEBUG": "1"}}).json()

    assert again["version"] == first["version"]
    assert again["pipeline_id"] is None
    assert events == []


def test_secrets_naming_a_key_that_is_not_set_is_422(client: TestClient, staging: str) -> None:
    response = client.patch(f"{staging}/config", json={"secrets": ["NOPE"]})

    assert response.status_code == 422
    assert response.json() == {"detail": "secrets names 'NOPE', which is not set"}


def test_port_is_reserved(client: TestClient, staging: str) -> None:
    response = client.patch(f"{staging}/config", json={"vars": {"PORT": "8080"}})

    assert response.status_code == 422
    assert response.json() == {"detail": "PORT is set by Shipyard and cannot be configured"}
    assert client.get(f"{staging}/config").json()["version"] == 1


@pytest.mark.parametrize("key", ["LD_PRELOAD", "PYTHONWARNINGS", "BROWSER"])
def test_a_deploy_token_cannot_set_a_name_that_changes_how_programs_start(
    anonymous: TestClient, client: TestClient, staging: str, settings: Settings, key: str
) -> None:
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        _row, token = tokens.create_token(session=session, name="ci", scopes=["deploy:staging"])
        session.commit()

    response = anonymous.patch(
        f"{staging}/config",
        json={"vars": {key: "antigravity.x"}},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith(f"{key} is a reserved config name: ")
    assert "antigravity" not in detail  # the value is not echoed
    assert client.get(f"{staging}/config").json()["version"] == 1


@pytest.mark.parametrize("secret", [False, True], ids=["plain", "secret"])
def test_a_value_with_a_nul_character_is_422_with_why(
    client: TestClient, staging: str, secret: bool
) -> None:
    # A process's environment cannot carry it: refused here, not as a failed release later.
    body = {"vars": {"DATABASE_PASSWORD": f"{SECRET}\x00tail"}}
    response = client.patch(
        f"{staging}/config", json={**body, "secrets": ["DATABASE_PASSWORD"] if secret else []}
    )

    assert response.status_code == 422
    assert response.json() == {
        "detail": "vars.DATABASE_PASSWORD: Value error, "
        "a config value cannot contain a NUL character (\\x00)"
    }
    assert client.get(f"{staging}/config").json()["version"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {"vars": {"DATABASE_PASSWORD": SECRET}, "secrets": ["DATABASE_PASSWORD"], "x": 1},
        {"vars": {"DATABASE_PASSWORD": [SECRET]}},
        {"vars": {"DATABASE_PASSWORD": {"value": SECRET}}},
        {"vars": {"BAD-KEY": SECRET}},
        {"vars": {"BAD\x00KEY": SECRET}},
        {"vars": {"DATABASE_PASSWORD": SECRET + "\x00"}},
        {"vars": {"DATABASE_PASSWORD": SECRET + "x" * 70_000}},
        {"vars": {"DATABASE_PASSWORD": SECRET}, "deploy": SECRET},
        {"vars": {"DATABASE_PASSWORD": SECRET}, "secrets": SECRET},
        [SECRET],
    ],
)
def test_an_invalid_body_is_422_without_echoing_its_values(
    client: TestClient, staging: str, body: object
) -> None:
    response = client.patch(f"{staging}/config", json=body)

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)
    assert SECRET not in response.text
    assert client.get(f"{staging}/config").json()["version"] == 1


def test_with_a_live_release_a_change_starts_a_config_pipeline(
    client: TestClient, staging: str, settings: Settings, events: list[Event]
) -> None:
    artifact_id = _make_live(settings)

    response = client.patch(f"{staging}/config", json={"vars": {"DEBUG": "1"}})

    pipeline_id = response.json()["pipeline_id"]
    assert pipeline_id is not None
    assert events == [ArtifactBuilt(pipeline_id=uuid.UUID(pipeline_id), artifact_id=artifact_id)]
    pipeline = client.get(f"/v1/pipelines/{pipeline_id}").json()
    assert (pipeline["kind"], [s["name"] for s in pipeline["stages"]]) == (
        "config",
        ["release", "run"],
    )


def test_deploy_false_changes_the_config_without_a_release(
    client: TestClient, staging: str, settings: Settings, events: list[Event]
) -> None:
    _make_live(settings)

    response = client.patch(f"{staging}/config", json={"vars": {"DEBUG": "1"}, "deploy": False})

    assert response.json()["version"] == 2
    assert response.json()["pipeline_id"] is None
    assert events == []


def test_without_a_live_release_a_change_starts_nothing(
    client: TestClient, staging: str, events: list[Event]
) -> None:
    response = client.patch(f"{staging}/config", json={"vars": {"DEBUG": "1"}})

    assert response.json()["pipeline_id"] is None
    assert events == []
