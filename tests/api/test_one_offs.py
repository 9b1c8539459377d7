"""`/v1/apps/{app}/environments/{env}/runs` and `/v1/runs/{id}`: one-off commands recorded and
handed to their run host's inbox (a fake broker here: the host side is tests/workers and
tests/integration)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import fakeredis
import pytest
import redis
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from shipyard.api.main import create_app
from shipyard.shared import build_stream, one_off_stream
from shipyard.shared.db import get_engine
from shipyard.shared.events import Event
from shipyard.shared.host_inbox import Inbox, OneOffMessage
from shipyard.shared.models import OneOffStatus, Pipeline, PipelineStatus
from shipyard.shared.schemas.one_offs import MAX_STDIN_BYTES
from shipyard.shared.services import apps, one_offs
from shipyard.shared.settings import Settings
from tests.api.ui.conftest import make_token
from tests.shared.factories import make_artifact, make_release

RUNS = "/v1/apps/web/environments/staging/runs"


@pytest.fixture
def broker() -> Iterator[fakeredis.FakeRedis]:
    client = fakeredis.FakeRedis()
    yield client
    client.close()


@pytest.fixture
def api(
    settings: Settings, events: list[Event], broker: fakeredis.FakeRedis
) -> Iterator[TestClient]:
    """The API with run host alpha up, web/staging placed there with a release v1."""
    app = create_app(
        settings,
        publisher=events.append,
        workers_probe=lambda: {"run.alpha": ["run@alpha"]},
        broker=broker,
    )
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {settings.api_token()}"
        assert client.post("/v1/apps", json={"name": "web", "repo": "/srv/web"}).status_code == 201
        body = {"name": "staging", "run_host": "alpha"}
        assert client.post("/v1/apps/web/environments", json=body).status_code == 201
        body = {"name": "production", "run_host": "alpha"}
        assert client.post("/v1/apps/web/environments", json=body).status_code == 201
        with Session(get_engine(settings.sqlalchemy_url)) as session:
            owner = apps.get_app(session=session, name="web")
            staging = apps.get_environment(session=session, app=owner, name="staging")
            make_release(session, owner, staging, make_artifact(session, owner))
        yield client


def test_a_run_is_recorded_and_sent_to_its_hosts_inbox(
    api: TestClient, broker: fakeredis.FakeRedis, settings: Settings
) -> None:
    response = api.post(RUNS, json={"command": "flask --app flaskr init-db", "timeout": 60})

    assert response.status_code == 202, response.text
    run = response.json()
    assert (run["status"], run["host"], run["release_version"]) == ("queued", "alpha", 1)
    assert (run["command"], run["requested_by"], run["timeout"]) == (
        "flask --app flaskr init-db",
        "admin",
        60,
    )
    sent = Inbox(broker, settings.broker_namespace).receive("alpha", timeout=1)
    assert sent == OneOffMessage(run_id=uuid.UUID(run["id"]))
    assert [r["id"] for r in api.get(RUNS).json()] == [run["id"]]
    assert api.get(f"/v1/runs/{run['id']}").json()["status"] == "queued"


def test_its_standard_input_waits_on_the_broker_for_its_host_and_is_never_recorded(
    api: TestClient, broker: fakeredis.FakeRedis, settings: Settings
) -> None:
    data = b"INSERT INTO post VALUES ('secret-ish');\n\x00\xff"
    body = {"command": "sqlite3 blog.db", "stdin": base64.b64encode(data).decode()}

    run = api.post(RUNS, json=body).json()

    run_id = uuid.UUID(run["id"])
    sent = Inbox(broker, settings.broker_namespace).receive("alpha", timeout=1)
    assert sent == OneOffMessage(run_id=run_id, stdin=True)
    assert one_off_stream.take_input(broker, settings.broker_namespace, run_id) == data
    assert one_off_stream.take_input(broker, settings.broker_namespace, run_id) is None  # once
    assert "secret-ish" not in api.get(f"/v1/runs/{run_id}").text
    assert "stdin" not in run


def test_its_output_is_read_as_it_comes_and_its_end_from_the_store(
    api: TestClient, broker: fakeredis.FakeRedis, settings: Settings
) -> None:
    run_id = api.post(RUNS, json={"command": "echo hi"}).json()["id"]
    key = one_off_stream.output_key(settings.broker_namespace, uuid.UUID(run_id))
    build_stream.append(broker, key, "first")

    first = api.get(f"/v1/runs/{run_id}/output").json()
    build_stream.append(broker, key, "second")
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        one_offs.finish(
            session=session,
            run_id=uuid.UUID(run_id),
            status=OneOffStatus.FAILED,
            exit_code=2,
            output="first\nsecond",
        )
        session.commit()
    second = api.get(f"/v1/runs/{run_id}/output", params={"after": first["after"]}).json()

    assert (first["lines"], first["status"], first["exit_code"]) == (["first"], "queued", None)
    assert (second["lines"], second["status"], second["exit_code"]) == (["second"], "failed", 2)


def test_who_may_start_or_cancel_a_run(api: TestClient, settings: Settings) -> None:
    reader = {"Authorization": f"Bearer {make_token(settings, 'read')}"}
    production = {"Authorization": f"Bearer {make_token(settings, 'deploy:production')}"}
    staging = {"Authorization": f"Bearer {make_token(settings, 'deploy:staging')}"}

    as_reader = api.post(RUNS, json={"command": "true"}, headers=reader)
    elsewhere = api.post(RUNS, json={"command": "true"}, headers=production)
    allowed = api.post(RUNS, json={"command": "true"}, headers=staging)
    run_id = allowed.json()["id"]
    cancel_elsewhere = api.post(f"/v1/runs/{run_id}/cancel", headers=production)
    cancelled = api.post(f"/v1/runs/{run_id}/cancel", headers=staging)

    assert as_reader.status_code == 403
    assert elsewhere.status_code == 403 and "deploy:staging" in elsewhere.text
    assert allowed.status_code == 202 and allowed.json()["requested_by"] == "deploy:staging"
    assert api.get(f"/v1/runs/{run_id}", headers=reader).status_code == 200
    assert cancel_elsewhere.status_code == 403
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"


def test_bad_runs_are_refused_with_a_reason(api: TestClient) -> None:
    empty = api.post(RUNS, json={"command": "  "})
    nul = api.post(RUNS, json={"command": "echo \u0000"})
    unknown_release = api.post(RUNS, json={"command": "true", "release": 7})
    nothing_released = api.post(
        "/v1/apps/web/environments/production/runs", json={"command": "true"}
    )
    too_long = api.post(RUNS, json={"command": "true", "timeout": 10**6})
    not_base64 = api.post(RUNS, json={"command": "cat", "stdin": "not base64!"})
    too_big = base64.b64encode(b"x" * (MAX_STDIN_BYTES + 1)).decode()
    too_much_input = api.post(RUNS, json={"command": "cat", "stdin": too_big})
    missing = api.get(f"/v1/runs/{uuid.uuid4()}")

    assert empty.status_code == 422 and "empty" in empty.text
    assert nul.status_code == 422
    assert unknown_release.status_code == 404 and "no release v7" in unknown_release.text
    assert nothing_released.status_code == 422 and "deploy it first" in nothing_released.text
    assert too_long.status_code == 422
    assert not_base64.status_code == 422 and "not base64" in not_base64.text
    assert too_much_input.status_code == 422
    assert missing.status_code == 404


def test_a_run_on_a_host_that_is_not_up_is_refused(
    settings: Settings, events: list[Event], broker: fakeredis.FakeRedis
) -> None:
    app = create_app(settings, publisher=events.append, workers_probe=dict, broker=broker)
    with TestClient(app) as client, Session(get_engine(settings.sqlalchemy_url)) as session:
        client.headers["Authorization"] = f"Bearer {settings.api_token()}"
        client.post("/v1/apps", json={"name": "web", "repo": "/srv/web"})
        client.post("/v1/apps/web/environments", json={"name": "staging"})
        owner = apps.get_app(session=session, name="web")
        staging = apps.get_environment(session=session, app=owner, name="staging")
        make_release(session, owner, staging, make_artifact(session, owner))
        staging.run_host = "alpha"
        session.add(staging)
        session.commit()

        refused = client.post(RUNS, json={"command": "true"})

    assert refused.status_code == 422 and "'alpha' is not up" in refused.text


def _pipelines_ended(settings: Settings) -> None:
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        for pipeline in session.exec(select(Pipeline)):
            pipeline.status = PipelineStatus.SUCCEEDED
            session.add(pipeline)
        session.commit()


def test_destroying_the_app_asks_its_running_one_offs_to_end(
    api: TestClient, broker: fakeredis.FakeRedis, settings: Settings
) -> None:
    run_id = api.post(RUNS, json={"command": "sleep 600"}).json()["id"]
    _pipelines_ended(settings)

    destroyed = api.delete("/v1/apps/web", params={"confirm": "web"})

    assert destroyed.status_code == 200, destroyed.text
    assert destroyed.json()["one_offs_cancelled"] == 1
    namespace = settings.broker_namespace
    assert one_off_stream.cancel_requested(broker, namespace, uuid.UUID(run_id))


def test_destroying_with_a_one_off_running_and_the_broker_away_changes_nothing(
    api: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.post(RUNS, json={"command": "sleep 600"})
    _pipelines_ended(settings)

    def away(*_: object) -> None:
        raise redis.ConnectionError("the broker is away")

    monkeypatch.setattr(one_off_stream, "request_cancel", away)

    refused = api.delete("/v1/apps/web", params={"confirm": "web"})

    assert refused.status_code == 503, refused.text
    assert api.get("/v1/apps/web").status_code == 200  # nothing of the destroy was kept
