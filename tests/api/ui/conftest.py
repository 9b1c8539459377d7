"""The dashboard in-process: a signed-in browser-like client, tokens of each scope, a history."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from shipyard.shared.db import get_engine
from shipyard.shared.schemas import RolloutPlan, RolloutRecord
from shipyard.shared.schemas.rollouts import ReleaseFigures, RolloutStep
from shipyard.shared.services import apps, config, deployments, rollouts, tokens
from shipyard.shared.settings import Settings
from tests.shared.factories import make_artifact, make_pipeline, make_release

SECRET = "hunter2-database-password"
WEB_PROCESS = {"type": "web", "status": "running", "url": "http://127.0.0.1:5123"}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token in a page's forms."""
    found = _CSRF.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(browser: TestClient, token: str) -> str:
    """Sign `browser` in with `token`; returns the session's CSRF token."""
    form = browser.get("/ui/sign-in")
    assert form.status_code == 200, form.text
    response = browser.post(
        "/ui/sign-in",
        data={"token": token, "csrf": csrf_of(form.text), "next": "/ui"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return csrf_of(browser.get("/ui").text)


def make_token(settings: Settings, *scopes: str) -> str:
    """A new API token with `scopes`."""
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        _row, token = tokens.create_token(session=session, name="-".join(scopes), scopes=[*scopes])
        session.commit()
    return token


def go_live(settings: Settings, label: str, env: str = "staging") -> int:
    """A release of artifact `label` with the environment's current config, taken live as a
    finished run stage would; its version."""
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        app = apps.get_app(session=session, name="web")
        environment = apps.get_environment(session=session, app=app, name=env)
        current = config.current_config(session=session, environment=environment)
        release = make_release(session, app, environment, make_artifact(session, app, label))
        release.config_version_id = current.id
        session.add(release)
        pipeline = make_pipeline(session, app, environment)
        deployment = deployments.begin_deployment(
            session=session, pipeline_id=pipeline.id, release=release, cause="deploy"
        )
        assert deployment is not None
        deployments.go_live(session=session, deployment=deployment, processes=[WEB_PROCESS])
        session.commit()
        return release.version


def start_canary(settings: Settings, label: str, env: str = "staging") -> uuid.UUID:
    """A release of artifact `label` starting in its canary at 10 %, with one step's figures;
    its deployment's id."""
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        app = apps.get_app(session=session, name="web")
        environment = apps.get_environment(session=session, app=app, name=env)
        release = make_release(session, app, environment, make_artifact(session, app, label))
        assert release.pipeline_id is not None
        deployment = deployments.begin_deployment(
            session=session, pipeline_id=release.pipeline_id, release=release, cause="deploy"
        )
        assert deployment is not None
        step = RolloutStep(
            phase="canary",
            share=10,
            started_at=datetime(2026, 12, 1, 12, 0, tzinfo=UTC),
            canary=ReleaseFigures(requests=523, errors=0, error_rate=0.0, p95_ms=25.0),
            stable=ReleaseFigures(requests=4701, errors=0, error_rate=0.0, p95_ms=25.0),
        )
        record = RolloutRecord(
            plan=RolloutPlan(canary=[10, 50]), state="canary", share=10, steps=[step]
        )
        rollouts.record(session=session, deployment_id=deployment.id, record=record)
        session.commit()
        return deployment.id


@pytest.fixture
def history(client: TestClient, staging: str, settings: Settings) -> dict[str, Any]:
    """web/staging with v1 live then v2 (a secret added in between) live now; web/production
    with nothing live."""
    go_live(settings, "one")
    patched = client.patch(
        f"{staging}/config",
        json={
            "vars": {"DATABASE_URL": SECRET, "GREETING": "hi"},
            "secrets": ["DATABASE_URL"],
            "deploy": False,
        },
    )
    assert patched.status_code == 200, patched.text
    go_live(settings, "two")
    created = client.post("/v1/apps/web/environments", json={"name": "production"})
    assert created.status_code == 201, created.text
    return {"versions": [2, 1]}


@pytest.fixture
def browser(anonymous: TestClient) -> TestClient:
    """A client of the same running app with cookies and no bearer header, as a browser."""
    return TestClient(anonymous.app)
