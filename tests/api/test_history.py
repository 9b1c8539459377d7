"""`…/history?at=`: the release live at an instant, 404 before anything was, and for unknown
names; an instant without a time zone is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from shipyard.shared.db import get_engine
from shipyard.shared.models import Deployment
from shipyard.shared.settings import Settings
from tests.api.test_environments import make_live

WEB = {"type": "web", "status": "running", "url": "http://127.0.0.1:5000"}


def _went_live(settings: Settings) -> datetime:
    make_live(settings, [WEB])
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        started = session.exec(select(Deployment.started_at)).one()
    assert started is not None
    return started


def test_the_release_live_at_an_instant(
    client: TestClient, staging: str, settings: Settings
) -> None:
    started = _went_live(settings)
    at = started + timedelta(seconds=1)

    response = client.get(f"{staging}/history", params={"at": at.isoformat()})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert datetime.fromisoformat(body["at"]) == at
    assert body["release"]["version"] == 1
    assert body["deployment"]["release_version"] == 1
    assert (body["deployment"]["status"], body["deployment"]["trigger"]) == ("live", "api")
    assert "processes" not in body["deployment"]  # table-only columns stay out


def test_before_anything_went_live_it_is_404(
    client: TestClient, staging: str, settings: Settings
) -> None:
    before = _went_live(settings) - timedelta(seconds=1)

    response = client.get(f"{staging}/history", params={"at": before.isoformat()})

    assert response.status_code == 404
    assert response.json()["detail"].startswith("nothing was live in staging at")


def test_unknown_names_are_404_naming_what_is_missing(client: TestClient, staging: str) -> None:
    at = datetime(2026, 11, 24, 14, 0, tzinfo=UTC).isoformat()

    no_app = client.get("/v1/apps/nobody/environments/staging/history", params={"at": at})
    no_env = client.get("/v1/apps/web/environments/qa/history", params={"at": at})

    assert (no_app.status_code, no_app.json()["detail"]) == (404, "app 'nobody' not found")
    assert (no_env.status_code, no_env.json()["detail"]) == (
        404,
        "environment 'qa' of app 'web' not found",
    )


def test_an_instant_without_a_time_zone_is_422(client: TestClient, staging: str) -> None:
    response = client.get(f"{staging}/history", params={"at": "2026-11-24T14:00:00"})

    assert response.status_code == 422
    assert "time zone" in response.json()["detail"]


def test_history_needs_a_token(anonymous: TestClient) -> None:
    at = datetime(2026, 11, 24, 14, 0, tzinfo=UTC).isoformat()

    response = anonymous.get("/v1/apps/web/environments/staging/history", params={"at": at})

    assert response.status_code == 401
