"""Schedule routes: create, list, remove, runs; validation and deploy scopes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from shipyard.shared.db import get_engine
from shipyard.shared.services import schedules
from shipyard.shared.settings import Settings

SCHEDULE = {
    "action": "promote",
    "from": "staging",
    "to": "production",
    "cron": "0 3 * * 1-5",
    "timezone": "Europe/Paris",
    "gates": {"min_soak_seconds": 3600, "require_healthy": True},
}


@pytest.fixture
def two_envs(client: TestClient, staging: str) -> TestClient:
    assert client.post("/v1/apps/web/environments", json={"name": "production"}).status_code == 201
    return client


def test_create_list_and_remove_a_schedule(two_envs: TestClient) -> None:
    created = two_envs.post("/v1/apps/web/schedules", json=SCHEDULE)

    assert created.status_code == 201, created.text
    schedule = created.json()
    assert {k: schedule[k] for k in ("from", "to", "cron", "timezone", "gates")} == {
        k: SCHEDULE[k] for k in ("from", "to", "cron", "timezone", "gates")
    }
    next_due = datetime.fromisoformat(schedule["next_due_at"])
    assert next_due > datetime.now(UTC)
    assert next_due.astimezone(UTC).hour in (1, 2)  # 03:00 in Paris
    assert schedule["last_run"] is None
    assert [s["id"] for s in two_envs.get("/v1/apps/web/schedules").json()] == [schedule["id"]]

    removed = two_envs.delete(f"/v1/apps/web/schedules/{schedule['id']}")

    assert removed.status_code == 200 and removed.json()["deleted_at"] is not None
    assert two_envs.get("/v1/apps/web/schedules").json() == []
    gone = two_envs.delete(f"/v1/apps/web/schedules/{schedule['id']}")
    assert gone.status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cron": "every day"}, "cron"),
        ({"cron": "* * * * * *"}, "cron"),  # seconds are not a thing here
        ({"cron": "0 0 31 2 *"}, "cron"),  # never matches
        ({"cron": "*/0 * * * *"}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../etc/passwd"}, "timezone"),
        ({"action": "deploy"}, "action"),
        ({"gates": {"min_soak_seconds": -1}}, "min_soak_seconds"),
        ({"to": "staging"}, "two different environments"),
    ],
)
def test_invalid_schedules_are_422(
    two_envs: TestClient, change: dict[str, Any], field: str
) -> None:
    response = two_envs.post("/v1/apps/web/schedules", json={**SCHEDULE, **change})

    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]


def test_an_unknown_environment_is_404(two_envs: TestClient) -> None:
    response = two_envs.post("/v1/apps/web/schedules", json={**SCHEDULE, "to": "qa"})

    assert response.status_code == 404


def test_scheduling_a_promotion_needs_the_right_to_deploy_to_its_target(
    two_envs: TestClient, anonymous: TestClient
) -> None:
    def token(scope: str) -> dict[str, str]:
        made = two_envs.post("/v1/tokens", json={"name": scope, "scopes": [scope]}).json()
        return {"Authorization": f"Bearer {made['token']}"}

    staging_only = anonymous.post(
        "/v1/apps/web/schedules", json=SCHEDULE, headers=token("deploy:staging")
    )
    production = anonymous.post(
        "/v1/apps/web/schedules", json=SCHEDULE, headers=token("deploy:production")
    )
    reader = token("read")
    listed = anonymous.get("/v1/apps/web/schedules", headers=reader)
    removed = anonymous.delete(f"/v1/apps/web/schedules/{production.json()['id']}", headers=reader)

    assert staging_only.status_code == 403
    assert production.status_code == 201
    assert listed.status_code == 200 and len(listed.json()) == 1
    assert removed.status_code == 403


def test_runs_are_queryable_with_their_outcome(two_envs: TestClient, settings: Settings) -> None:
    schedule = two_envs.post("/v1/apps/web/schedules", json=SCHEDULE).json()
    due = datetime.fromisoformat(schedule["next_due_at"])
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        schedules.fire_due(session=session, now=due + timedelta(seconds=3))
        session.commit()

    runs = two_envs.get(f"/v1/apps/web/schedules/{schedule['id']}/runs")
    listed = two_envs.get("/v1/apps/web/schedules").json()

    assert runs.status_code == 200
    (run,) = runs.json()
    assert run["outcome"] == "skipped"
    assert run["reason"] == "staging has nothing live to promote"
    assert datetime.fromisoformat(run["due_at"]) == due
    assert listed[0]["last_run"] == run
    assert datetime.fromisoformat(listed[0]["next_due_at"]) > due
