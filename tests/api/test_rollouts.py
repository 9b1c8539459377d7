"""Canary releases over the API: plans on deploys, promotions and environments; the rollout
under way read, promoted and aborted; a rollback's precedence; the figures in `/metrics`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session, select

from shipyard.shared import constants
from shipyard.shared.db import get_engine
from shipyard.shared.models import Deployment, Environment, Pipeline
from shipyard.shared.schemas import RolloutPlan, RolloutRecord
from shipyard.shared.schemas.rollouts import ReleaseFigures, RolloutStep
from shipyard.shared.services import apps, deployments, rollouts
from shipyard.shared.settings import Settings
from tests.api.test_environments import make_live
from tests.shared.factories import make_artifact, make_release

WEB = {"type": "web", "status": "running", "url": "http://127.0.0.1:5000"}
STEP = RolloutStep(
    phase="canary",
    share=10,
    started_at=datetime(2026, 12, 1, 12, 0, tzinfo=UTC),
    canary=ReleaseFigures(requests=523, errors=3, error_rate=3 / 523, p95_ms=25.0),
    stable=ReleaseFigures(requests=4701, errors=0, error_rate=0.0, p95_ms=20.0),
)


def _canary(settings: Settings, state: str = "canary") -> uuid.UUID:
    """v1 live in web/staging, and v2 starting with its canary at 10 % (or, `watching`, v2
    live and watched); the new deployment's id."""
    make_live(settings, [WEB])
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        app = apps.get_app(session=session, name="web")
        environment = apps.get_environment(session=session, app=app, name="staging")
        release = make_release(session, app, environment, make_artifact(session, app, "two"))
        assert release.pipeline_id is not None
        deployment = deployments.begin_deployment(
            session=session, pipeline_id=release.pipeline_id, release=release, cause="deploy"
        )
        assert deployment is not None
        if state == "watching":
            deployments.go_live(session=session, deployment=deployment, processes=[WEB])  # type: ignore[list-item]
        record = RolloutRecord(
            plan=RolloutPlan(canary=[10, 50]),
            state=state,  # type: ignore[arg-type]
            share=10 if state == "canary" else 100,
            steps=[STEP],
        )
        rollouts.record(session=session, deployment_id=deployment.id, record=record)
        session.commit()
        return deployment.id


def _command(settings: Settings, deployment_id: uuid.UUID) -> str | None:
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        return session.exec(
            select(Deployment.rollout_command).where(Deployment.id == deployment_id)
        ).one()


def _deploy(client: TestClient, **body: Any) -> Any:
    return client.post("/v1/apps/web/pipelines", json={"environment": "staging", **body})


# --- plans -----------------------------------------------------------------------------------


def test_a_deploy_carries_the_plan_it_asks_for(client: TestClient, staging: str) -> None:
    response = _deploy(client, rollout={"canary": [10, 50], "step_seconds": 30})

    assert response.status_code == 202, response.text
    plan = response.json()["rollout"]
    assert (plan["canary"], plan["step_seconds"], plan["watch_seconds"]) == ([10, 50, 100], 30, 0)
    assert plan["max_error_rate"] == constants.CANARY_MAX_ERROR_RATE
    assert response.json()["rollout_record"] is None
    shown = client.get(f"/v1/pipelines/{response.json()['id']}").json()
    assert shown["rollout"] == plan


def test_a_deploy_without_a_plan_goes_live_at_once(client: TestClient, staging: str) -> None:
    response = _deploy(client)

    assert response.status_code == 202
    assert response.json()["rollout"] is None


@pytest.mark.parametrize(
    ("rollout", "message"),
    [
        ({"canary": [50, 10]}, "rollout: canary: canary shares must rise, e.g. 10,50,100"),
        ({"canary": [0, 50]}, "each canary share is a percentage from 1 to 100"),
        (
            {"canary": [10, 20, 30, 40], "step_seconds": 600},
            "more than the 1200s a rollout may take",
        ),
    ],
)
def test_a_plan_the_rules_refuse_is_a_422_that_says_why(
    client: TestClient, staging: str, rollout: dict[str, Any], message: str
) -> None:
    response = _deploy(client, rollout=rollout)

    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_a_request_field_out_of_its_bounds_is_a_422(client: TestClient, staging: str) -> None:
    response = _deploy(client, rollout={"watch_seconds": 7200})

    assert response.status_code == 422
    assert "rollout.watch_seconds" in response.json()["detail"]


def test_the_environments_default_applies_to_a_deploy_unless_it_says_canary_empty(
    client: TestClient, staging: str
) -> None:
    patched = client.patch(staging, json={"rollout": {"canary": [20], "step_seconds": 10}})

    default = _deploy(client)
    longer = _deploy(client, rollout={"step_seconds": 45})
    at_once = _deploy(client, rollout={"canary": []})

    assert patched.status_code == 200, patched.text
    assert patched.json()["rollout"]["canary"] == [20, 100]
    assert client.get(staging).json()["rollout"]["step_seconds"] == 10
    assert (default.json()["rollout"]["canary"], default.json()["rollout"]["step_seconds"]) == (
        [20, 100],
        10,
    )
    assert longer.json()["rollout"]["step_seconds"] == 45
    assert at_once.status_code == 202 and at_once.json()["rollout"] is None


def test_the_default_is_changed_alone_and_cleared_with_null(
    client: TestClient, staging: str
) -> None:
    client.patch(staging, json={"hsts": True})
    set_ = client.patch(staging, json={"rollout": {"watch_seconds": 300}})
    kept = client.patch(staging, json={"hsts": False})
    cleared = client.patch(staging, json={"rollout": None})

    assert set_.json()["rollout"]["watch_seconds"] == 300 and set_.json()["hsts"] is True
    assert kept.json()["rollout"]["watch_seconds"] == 300  # left out: unchanged
    assert cleared.status_code == 200 and cleared.json()["rollout"] is None
    assert _deploy(client).json()["rollout"] is None


def test_a_default_the_rules_refuse_is_a_422(client: TestClient, staging: str) -> None:
    response = client.patch(staging, json={"rollout": {"canary": [50, 10]}})

    assert response.status_code == 422
    assert "canary shares must rise" in response.json()["detail"]
    assert client.get(staging).json()["rollout"] is None


def test_canary_steps_are_taken_where_the_environment_is_spread(
    client: TestClient, staging: str, settings: Settings
) -> None:
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        row = session.exec(select(Environment).where(Environment.name == "staging")).one()
        row.run_host, row.extra_hosts = "alpha", ["beta"]
        session.add(row)
        session.commit()

    deploy = _deploy(client, rollout={"canary": [10]})
    default = client.patch(staging, json={"rollout": {"canary": [10]}})
    watched = _deploy(client, rollout={"watch_seconds": 60})

    assert deploy.status_code == 202 and deploy.json()["rollout"]["canary"] == [10, 100]
    assert default.status_code == 200 and default.json()["rollout"]["canary"] == [10, 100]
    assert watched.status_code == 202 and watched.json()["rollout"]["watch_seconds"] == 60


def test_a_promotion_takes_the_targets_default_or_its_own_plan(
    client: TestClient, staging: str, settings: Settings
) -> None:
    make_live(settings, [WEB])
    client.post("/v1/apps/web/environments", json={"name": "production"})
    client.patch("/v1/apps/web/environments/production", json={"rollout": {"canary": [5, 25]}})

    default = client.post("/v1/apps/web/promotions", json={"from": "staging", "to": "production"})
    own = client.post(
        "/v1/apps/web/promotions",
        json={"from": "staging", "to": "production", "rollout": {"canary": [50]}},
    )

    assert default.status_code == 202, default.text
    assert default.json()["rollout"]["canary"] == [5, 25, 100]
    assert own.json()["rollout"]["canary"] == [50, 100]


def test_a_config_release_takes_the_environments_default(
    client: TestClient, staging: str, settings: Settings
) -> None:
    make_live(settings, [WEB])
    client.patch(staging, json={"rollout": {"canary": [30]}})

    changed = client.patch(f"{staging}/config", json={"vars": {"GREETING": "hi"}})

    pipeline_id = uuid.UUID(changed.json()["pipeline_id"])
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        plan = session.exec(select(Pipeline.rollout).where(Pipeline.id == pipeline_id)).one()
    assert plan is not None and plan["canary"] == [30, 100]


# --- the rollout under way ---------------------------------------------------------------------


def test_the_canary_under_way_is_shown_with_its_deployment_and_release(
    client: TestClient, staging: str, settings: Settings
) -> None:
    deployment_id = _canary(settings)

    response = client.get(f"{staging}/canary")

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["deployment_id"], body["release_version"]) == (str(deployment_id), 2)
    assert (body["state"], body["share"], body["command"]) == ("canary", 10, None)
    assert body["steps"][0]["canary"]["requests"] == 523
    assert body["plan"]["canary"] == [10, 50, 100]


def test_no_canary_is_a_404_that_says_so(client: TestClient, staging: str) -> None:
    response = client.get(f"{staging}/canary")

    assert response.status_code == 404
    assert response.json()["detail"] == "no canary or watch runs in staging now"


@pytest.mark.parametrize("command", ["promote", "abort"])
def test_promote_and_abort_set_the_command_and_answer_202(
    client: TestClient, staging: str, settings: Settings, command: str
) -> None:
    deployment_id = _canary(settings)

    response = client.post(f"{staging}/canary/{command}")

    assert response.status_code == 202, response.text
    assert response.json()["command"] == command
    assert response.json()["deployment_id"] == str(deployment_id)
    assert _command(settings, deployment_id) == command
    assert client.get(f"{staging}/canary").json()["command"] == command


def test_a_watch_takes_commands_too(client: TestClient, staging: str, settings: Settings) -> None:
    deployment_id = _canary(settings, "watching")

    response = client.post(f"{staging}/canary/abort")

    assert response.status_code == 202
    assert response.json()["state"] == "watching"
    assert _command(settings, deployment_id) == "abort"


@pytest.mark.parametrize("command", ["promote", "abort"])
def test_a_command_when_nothing_runs_is_a_409(
    client: TestClient, staging: str, settings: Settings, command: str
) -> None:
    make_live(settings, [WEB])

    response = client.post(f"{staging}/canary/{command}")

    assert response.status_code == 409
    assert "no canary or watch runs in staging" in response.json()["detail"]


def test_commands_of_an_unknown_app_or_environment_are_404(
    client: TestClient, staging: str
) -> None:
    assert client.post("/v1/apps/nope/environments/staging/canary/abort").status_code == 404
    assert client.post("/v1/apps/web/environments/nope/canary/promote").status_code == 404
    assert client.get("/v1/apps/web/environments/nope/canary").status_code == 404


def test_a_deploy_token_commands_its_environments_canary_only(
    client: TestClient, staging: str, settings: Settings
) -> None:
    _canary(settings)
    created = client.post("/v1/tokens", json={"name": "ci", "scopes": ["deploy:production"]})
    other = {"Authorization": f"Bearer {created.json()['token']}"}
    created = client.post("/v1/tokens", json={"name": "ci2", "scopes": ["deploy:staging"]})
    own = {"Authorization": f"Bearer {created.json()['token']}"}

    assert client.post(f"{staging}/canary/abort", headers=other).status_code == 403
    assert client.post(f"{staging}/canary/abort", headers=own).status_code == 202


def test_a_rollback_during_a_canary_tells_it_to_yield(
    client: TestClient, staging: str, settings: Settings
) -> None:
    deployment_id = _canary(settings)

    response = client.post(f"{staging}/rollback", json={})

    assert response.status_code == 202, response.text
    assert _command(settings, deployment_id) == "yield"


def test_deployments_show_their_rollout_record(
    client: TestClient, staging: str, settings: Settings
) -> None:
    deployment_id = _canary(settings, "watching")

    current = client.get(f"{staging}/current").json()
    listed = client.get(f"{staging}/deployments").json()

    assert current["deployment"]["id"] == str(deployment_id)
    assert current["deployment"]["rollout"]["state"] == "watching"
    assert "rollout_command" not in current["deployment"]
    assert [d["rollout"] is not None for d in listed] == [True, False]


def test_a_stored_record_that_does_not_parse_is_shown_as_null(
    client: TestClient, staging: str, settings: Settings
) -> None:
    deployment_id = _canary(settings, "watching")
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        row = session.get(Deployment, deployment_id)
        assert row is not None
        row.rollout = {"state": "watching", "plan": {"canary": "lots"}, "share": "most"}
        session.add(row)
        session.commit()

    current = client.get(f"{staging}/current")
    canary = client.get(f"{staging}/canary")

    assert current.status_code == 200 and current.json()["deployment"]["rollout"] is None
    assert canary.status_code == 200 and canary.json()["state"] == "watching"


def test_a_pipeline_shows_its_deployments_rollout_record(
    client: TestClient, staging: str, settings: Settings
) -> None:
    deployment_id = _canary(settings)
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        deployment = session.get(Deployment, deployment_id)
        assert deployment is not None and deployment.pipeline_id is not None
        pipeline = session.get(Pipeline, deployment.pipeline_id)
        assert pipeline is not None
        pipeline.rollout = RolloutPlan(canary=[10, 50]).model_dump(mode="json")
        session.add(pipeline)
        session.commit()
        pipeline_id = pipeline.id

    shown = client.get(f"/v1/pipelines/{pipeline_id}").json()

    assert shown["rollout"]["canary"] == [10, 50, 100]
    assert shown["rollout_record"]["state"] == "canary"
    assert shown["rollout_record"]["steps"][0]["stable"]["requests"] == 4701


# --- /metrics --------------------------------------------------------------------------------


def test_metrics_show_the_share_and_error_rates_of_a_rollout_under_way(
    client: TestClient, staging: str, settings: Settings
) -> None:
    before = client.get("/metrics").text
    _canary(settings)

    scraped = client.get("/metrics").text

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
    }
    where = (("app", "web"), ("environment", "staging"))
    assert samples[("shipyard_rollout_share", where)] == 10
    assert samples[("shipyard_rollout_error_rate", (*where, ("release", "new")))] == 3 / 523
    assert samples[("shipyard_rollout_error_rate", (*where, ("release", "live")))] == 0
    assert "shipyard_rollout_share{" not in before
