"""Pipelines: started with 202 and one event; a broker that is away fails them clearly."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from shipyard.api.main import create_app
from shipyard.shared.db import get_engine
from shipyard.shared.events import Event, PipelineQueued
from shipyard.shared.models import Pipeline, PipelineStatus
from shipyard.shared.settings import Settings
from tests.api.test_environments import make_live


def test_starting_a_pipeline_answers_202_with_build_queued(
    client: TestClient, staging: str, events: list[Event]
) -> None:
    response = client.post("/v1/apps/web/pipelines", json={"environment": "staging", "ref": "main"})

    assert response.status_code == 202
    pipeline = response.json()
    assert (pipeline["app"], pipeline["environment"], pipeline["ref"]) == ("web", "staging", "main")
    assert (pipeline["kind"], pipeline["status"], pipeline["trigger"]) == (
        "deploy",
        "queued",
        "api",
    )
    assert [(s["name"], s["status"]) for s in pipeline["stages"]] == [
        ("build", "queued"),
        ("release", "pending"),
        ("run", "pending"),
    ]


def test_a_pipeline_records_the_client_that_asked_and_the_tokens_name(
    client: TestClient, staging: str
) -> None:
    body = {"environment": "staging"}
    from_cli = client.post(
        "/v1/apps/web/pipelines", json=body, headers={"X-Shipyard-Client": "cli"}
    )
    plain = client.post("/v1/apps/web/pipelines", json=body)

    assert (from_cli.json()["trigger"], from_cli.json()["requested_by"]) == ("cli", "admin")
    assert (plain.json()["trigger"], plain.json()["requested_by"]) == ("api", "admin")


def test_starting_a_pipeline_publishes_one_event_with_only_its_id(
    client: TestClient, staging: str, events: list[Event]
) -> None:
    response = client.post("/v1/apps/web/pipelines", json={"environment": "staging"})

    pipeline_id = uuid.UUID(response.json()["id"])
    assert events == [PipelineQueued(pipeline_id=pipeline_id)]
    assert events[0].model_dump() == {"pipeline_id": pipeline_id, "type": "pipeline.queued"}


def test_a_pipeline_can_be_read_back(client: TestClient, staging: str) -> None:
    created = client.post("/v1/apps/web/pipelines", json={"environment": "staging"}).json()

    response = client.get(f"/v1/pipelines/{created['id']}")

    assert response.status_code == 200
    assert response.json() == created


def test_an_unknown_pipeline_is_404(client: TestClient) -> None:
    pipeline_id = uuid.uuid4()

    response = client.get(f"/v1/pipelines/{pipeline_id}")

    assert response.status_code == 404
    assert response.json() == {"detail": f"pipeline {pipeline_id} not found"}


def test_a_pipeline_without_a_build_yet_has_no_log(client: TestClient, staging: str) -> None:
    created = client.post("/v1/apps/web/pipelines", json={"environment": "staging"}).json()

    response = client.get(f"/v1/pipelines/{created['id']}/log")

    assert response.status_code == 404
    assert response.json() == {"detail": f"pipeline {created['id']} has no build log (yet)"}


def test_a_pipeline_id_that_is_not_a_uuid_is_422(client: TestClient) -> None:
    response = client.get("/v1/pipelines/not-a-uuid")

    assert response.status_code == 422
    assert response.json()["detail"].startswith("path.pipeline_id: ")


def test_a_pipeline_of_an_unknown_app_or_environment_is_404(
    client: TestClient, staging: str, events: list[Event]
) -> None:
    unknown_app = client.post("/v1/apps/nope/pipelines", json={"environment": "staging"})
    unknown_env = client.post("/v1/apps/web/pipelines", json={"environment": "nope"})

    assert (unknown_app.status_code, unknown_app.json()) == (
        404,
        {"detail": "app 'nope' not found"},
    )
    assert (unknown_env.status_code, unknown_env.json()) == (
        404,
        {"detail": "environment 'nope' of app 'web' not found"},
    )
    assert events == []


@pytest.mark.parametrize("ref", ["-x", "--output=/tmp/pwned", "main;rm -rf /", "$(id)", "a b"])
def test_an_invalid_ref_is_422_and_starts_nothing(
    client: TestClient, staging: str, events: list[Event], ref: str
) -> None:
    response = client.post("/v1/apps/web/pipelines", json={"environment": "staging", "ref": ref})

    assert response.status_code == 422
    assert response.json()["detail"].startswith("ref: ")
    assert events == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"environment": "staging", "force": True}, "force: Extra inputs are not permitted"),
        ({"environment": "../prod"}, "environment: "),
        ({"environment": "staging", "trigger": "cron"}, "trigger: "),
        ({}, "environment: Field required"),
    ],
)
def test_other_invalid_pipeline_bodies_are_422(
    client: TestClient, staging: str, body: dict[str, object], message: str
) -> None:
    response = client.post("/v1/apps/web/pipelines", json=body)

    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_when_the_broker_is_away_the_pipeline_is_failed_and_503_says_so(
    settings: Settings, staging: str
) -> None:
    def unreachable(_event: Event) -> None:
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    with TestClient(create_app(settings, publisher=unreachable)) as client:
        client.headers["Authorization"] = f"Bearer {settings.api_token()}"

        response = client.post("/v1/apps/web/pipelines", json={"environment": "staging"})

        assert response.status_code == 503
        (pipeline_id,) = _pipeline_ids(settings)
        assert response.json() == {
            "detail": f"the broker is unavailable; pipeline {pipeline_id} was recorded as failed, "
            "try again shortly"
        }
        stored = client.get(f"/v1/pipelines/{pipeline_id}").json()
    assert stored["status"] == "failed"
    assert stored["error"] == (
        "build stage failed: the broker could not be reached (ConnectionRefusedError); "
        "start it again"
    )
    assert [(s["name"], s["status"]) for s in stored["stages"]] == [
        ("build", "failed"),
        ("release", "skipped"),
        ("run", "skipped"),
    ]


def _pipeline_ids(settings: Settings) -> list[uuid.UUID]:
    # Read from the database, to check the id the 503 names is the stored one.
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        return list(session.exec(select(Pipeline.id)))


def test_a_restart_needs_something_live_and_no_pipeline_under_way(
    client: TestClient, staging: str
) -> None:
    restart = "/v1/apps/web/environments/staging/restart"

    nothing_live = client.post(restart, json={})
    client.post("/v1/apps/web/pipelines", json={"environment": "staging"})
    busy = client.post(restart, json={})

    assert nothing_live.status_code == 422 and "nothing is live in staging" in nothing_live.text
    assert busy.status_code == 409 and "restart once it has ended" in busy.text


def _live(settings: Settings, processes: list[dict[str, Any]]) -> None:
    """A live deployment running `processes`, its pipeline ended."""
    make_live(settings, processes)
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        for pipeline in session.exec(select(Pipeline)):
            pipeline.status = PipelineStatus.SUCCEEDED
            session.add(pipeline)
        session.commit()


def test_a_restart_of_one_process_type_records_it_on_its_pipeline(
    client: TestClient, staging: str, settings: Settings, events: list[Event]
) -> None:
    _live(settings, [{"type": "web", "index": 1}, {"type": "worker", "index": 1}])

    response = client.post(f"{staging}/restart", json={"process_type": "worker"})

    assert response.status_code == 202, response.text
    pipeline = response.json()
    assert (pipeline["kind"], pipeline["process_type"]) == ("restart", "worker")
    assert [(s["name"], s["status"]) for s in pipeline["stages"]] == [("run", "queued")]
    assert client.get(f"/v1/pipelines/{pipeline['id']}").json()["process_type"] == "worker"
    assert len(events) == 1


@pytest.mark.parametrize("body", [None, {}])
def test_a_restart_without_a_type_restarts_every_process(
    client: TestClient, staging: str, settings: Settings, body: dict[str, str] | None
) -> None:
    _live(settings, [{"type": "web", "index": 1}])

    response = client.post(f"{staging}/restart", json=body)

    assert response.status_code == 202, response.text
    assert response.json()["process_type"] is None


def test_a_restart_of_a_type_that_does_not_run_is_422_naming_what_runs(
    client: TestClient, staging: str, settings: Settings
) -> None:
    _live(settings, [{"type": "web", "index": 1}, {"type": "clock", "index": 1}])

    unknown = client.post(f"{staging}/restart", json={"process_type": "worker"})
    malformed = client.post(f"{staging}/restart", json={"process_type": "web 1"})

    assert unknown.status_code == 422
    assert unknown.json() == {"detail": "staging runs no 'worker' process (it runs: clock, web)"}
    assert malformed.status_code == 422 and "process_type" in malformed.text
