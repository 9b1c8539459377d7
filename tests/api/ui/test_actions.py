"""Deploy, roll back and promote from the dashboard: the API's scopes and services, CSRF-checked
forms, and a page (never a traceback) for whatever is refused."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from shipyard.shared.db import get_engine
from shipyard.shared.events import ArtifactBuilt, Event, PipelineQueued, ReleaseCreated
from shipyard.shared.models import Deployment
from shipyard.shared.settings import Settings
from tests.api.ui.conftest import make_token, sign_in, start_canary


def _pipeline_id(response: Any) -> uuid.UUID:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith("/ui/pipelines/")
    return uuid.UUID(location.removeprefix("/ui/pipelines/"))


def test_deploy_starts_a_pipeline_as_the_api_does_and_shows_it(
    browser: TestClient, settings: Settings, staging: str, events: list[Event]
) -> None:
    csrf = sign_in(browser, settings.api_token())

    response = browser.post(
        "/ui/apps/web/deploy",
        data={"csrf": csrf, "environment": "staging", "ref": "main"},
        follow_redirects=False,
    )

    pipeline_id = _pipeline_id(response)
    assert events == [PipelineQueued(pipeline_id=pipeline_id)]
    page = browser.get(f"/ui/pipelines/{pipeline_id}")
    assert page.status_code == 200
    assert 'data-stage="build" data-status="queued"' in page.text
    assert f'sse-connect="/ui/pipelines/{pipeline_id}/events' in page.text
    assert "<dt>Triggered by</dt><dd>dashboard (admin)</dd>" in page.text  # and by whom
    assert "<dt>Ref</dt><dd>main</dd>" in page.text


def test_rollback_runs_the_chosen_release_again(
    browser: TestClient, settings: Settings, history: dict[str, Any], events: list[Event]
) -> None:
    csrf = sign_in(browser, make_token(settings, "deploy:staging"))

    response = browser.post(
        "/ui/apps/web/environments/staging/rollback",
        data={"csrf": csrf, "to_version": "1"},
        follow_redirects=False,
    )

    pipeline_id = _pipeline_id(response)
    assert len(events) == 1 and isinstance(events[0], ReleaseCreated)
    assert events[0].pipeline_id == pipeline_id
    page = browser.get(f"/ui/pipelines/{pipeline_id}").text
    assert "Rollback of web to staging" in page
    assert 'data-stage="run"' in page and 'data-stage="build"' not in page


def test_promote_releases_the_live_artifact_to_the_next_environment(
    browser: TestClient, settings: Settings, history: dict[str, Any], events: list[Event]
) -> None:
    csrf = sign_in(browser, make_token(settings, "deploy:production"))

    response = browser.post(
        "/ui/apps/web/promote",
        data={"csrf": csrf, "from": "staging", "to": "production"},
        follow_redirects=False,
    )

    pipeline_id = _pipeline_id(response)
    assert len(events) == 1 and isinstance(events[0], ArtifactBuilt)
    assert events[0].pipeline_id == pipeline_id


FORMS = [
    ("/ui/apps/web/deploy", {"environment": "staging", "ref": "HEAD"}),
    ("/ui/apps/web/environments/staging/rollback", {"to_version": "1"}),
    ("/ui/apps/web/promote", {"from": "production", "to": "staging"}),
]


@pytest.mark.parametrize(("path", "form"), FORMS)
def test_a_read_token_is_refused_even_with_a_good_csrf_token(
    browser: TestClient,
    settings: Settings,
    history: dict[str, Any],
    events: list[Event],
    path: str,
    form: dict[str, str],
) -> None:
    csrf = sign_in(browser, make_token(settings, "read"))

    response = browser.post(path, data={**form, "csrf": csrf})

    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "(needs deploy:staging)" in response.text
    assert events == []


@pytest.mark.parametrize(("path", "form"), FORMS)
@pytest.mark.parametrize("csrf", [None, "", "forged"])
def test_a_form_without_the_sessions_csrf_token_is_refused(
    browser: TestClient,
    settings: Settings,
    history: dict[str, Any],
    events: list[Event],
    path: str,
    form: dict[str, str],
    csrf: str | None,
) -> None:
    sign_in(browser, settings.api_token())

    response = browser.post(path, data=form if csrf is None else {**form, "csrf": csrf})

    assert response.status_code == 403
    assert "CSRF token is missing or wrong" in response.text
    assert events == []


@pytest.mark.parametrize(("path", "form"), FORMS)
def test_a_post_without_a_session_goes_to_sign_in(
    browser: TestClient,
    history: dict[str, Any],
    events: list[Event],
    path: str,
    form: dict[str, str],
) -> None:
    response = browser.post(path, data={**form, "csrf": "x"}, follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/sign-in")
    assert events == []


@pytest.mark.parametrize(
    ("path", "form", "status", "message"),
    [
        ("/ui/apps/web/deploy", {"environment": "staging", "ref": "-x"}, 422, "ref must be"),
        ("/ui/apps/web/deploy", {"environment": "nope", "ref": "HEAD"}, 404, "'nope'"),
        ("/ui/apps/nope/deploy", {"environment": "staging"}, 404, "app 'nope' not found"),
        ("/ui/apps/web/deploy", {"environment": "staging", "ref": "x" * 300}, 422, "ref"),
        (
            "/ui/apps/web/environments/staging/rollback",
            {"to_version": "2"},
            409,
            "v2 is already live in staging",
        ),
        (
            "/ui/apps/web/environments/staging/rollback",
            {"to_version": "two"},
            422,
            "to_version",
        ),
        ("/ui/apps/web/promote", {"from": "staging", "to": "staging"}, 422, "two different"),
        (
            "/ui/apps/web/promote",
            {"from": "production", "to": "staging"},
            409,
            "production has no live, healthy deployment",
        ),
    ],
)
def test_bad_input_is_a_clear_message_on_a_page(
    browser: TestClient,
    settings: Settings,
    history: dict[str, Any],
    events: list[Event],
    path: str,
    form: dict[str, str],
    status: int,
    message: str,
) -> None:
    csrf = sign_in(browser, settings.api_token())

    response = browser.post(path, data={**form, "csrf": csrf})

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert message in response.text.replace("&#39;", "'")
    assert events == []


def test_a_canary_is_promoted_from_its_environments_page(
    browser: TestClient, settings: Settings, history: dict[str, Any]
) -> None:
    deployment_id = start_canary(settings, "three")
    csrf = sign_in(browser, make_token(settings, "deploy:staging"))

    response = browser.post(
        "/ui/apps/web/environments/staging/canary/promote",
        data={"csrf": csrf},
        follow_redirects=False,
    )

    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/ui/apps/web/environments/staging"
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        deployment = session.get(Deployment, deployment_id)
        assert deployment is not None and deployment.rollout_command == "promote"
    page = browser.get("/ui/apps/web/environments/staging").text
    assert "(promote asked)" in page


def test_aborting_when_no_canary_runs_is_a_409_page(
    browser: TestClient, settings: Settings, history: dict[str, Any]
) -> None:
    csrf = sign_in(browser, settings.api_token())

    response = browser.post("/ui/apps/web/environments/staging/canary/abort", data={"csrf": csrf})

    assert response.status_code == 409
    assert "no canary or watch runs in staging" in response.text
