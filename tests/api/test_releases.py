"""Releases and artifacts over the API: newest first."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session

from shipyard.shared.db import get_engine
from shipyard.shared.services import apps, builds
from shipyard.shared.settings import Settings
from tests.shared.factories import make_artifact, make_pipeline, make_release


def test_releases_are_listed_newest_first(
    client: TestClient, staging: str, settings: Settings
) -> None:
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        app = apps.get_app(session=session, name="web")
        environment = apps.get_environment(session=session, app=app, name="staging")
        artifacts = [make_artifact(session, app, label) for label in ("one", "two", "three")]
        for artifact in artifacts:
            make_release(session, app, environment, artifact)
        artifact_ids = [a.id for a in artifacts]

    response = client.get(f"{staging}/releases")

    assert response.status_code == 200
    listed = response.json()
    assert [r["version"] for r in listed] == [3, 2, 1]
    assert [r["artifact_id"] for r in listed] == artifact_ids[::-1]
    assert {(r["status"], r["cause"], r["config_version"]) for r in listed} == {
        ("pending", "deploy", 1)
    }


def test_an_environment_without_releases_lists_none(client: TestClient, staging: str) -> None:
    assert client.get(f"{staging}/releases").json() == []


def test_artifacts_of_an_app_are_listed(
    client: TestClient, staging: str, settings: Settings
) -> None:
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        app = apps.get_app(session=session, name="web")
        artifact = make_artifact(session, app)
        environment = apps.get_environment(session=session, app=app, name="staging")
        build = builds.start_build(
            session=session, pipeline=make_pipeline(session, app, environment), app=app
        )
        builds.finish_build(
            session=session,
            build_id=build.id,
            commit_sha=artifact.commit_sha,
            artifact_id=artifact.id,
            cache_hit=False,
            log="",
        )
        session.commit()
        artifact_id = artifact.id

    response = client.get("/v1/apps/web/artifacts")

    assert response.status_code == 200
    assert [(a["id"], a["commit"]) for a in response.json()] == [(artifact_id, artifact.commit_sha)]


def test_artifacts_of_an_unknown_app_are_404(client: TestClient) -> None:
    response = client.get("/v1/apps/nope/artifacts")

    assert response.status_code == 404
    assert response.json() == {"detail": "app 'nope' not found"}
