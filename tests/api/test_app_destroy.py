"""`DELETE /v1/apps/{app}` (`shipyard apps destroy`): confirmed, refused while busy, and what it
leaves: nothing live, nothing firing, its records kept, its name free."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from shipyard.shared.db import get_engine
from shipyard.shared.models import (
    App,
    Deployment,
    DeploymentStatus,
    Environment,
    Pipeline,
    PipelineStatus,
    Schedule,
    Subscription,
    WebhookConfig,
)
from shipyard.shared.services import destroy, routes
from shipyard.shared.settings import Settings
from tests.api.test_environments import make_live

SCHEDULE = {"action": "promote", "from": "staging", "to": "production", "cron": "0 3 * * *"}


def _session(settings: Settings) -> Session:
    return Session(get_engine(settings.sqlalchemy_url))


def _pipelines_ended(settings: Settings) -> None:
    with _session(settings) as session:
        for pipeline in session.exec(select(Pipeline)):
            pipeline.status = PipelineStatus.SUCCEEDED
            session.add(pipeline)
        session.commit()


def test_destroying_needs_the_app_name_as_confirmation(client: TestClient, staging: str) -> None:
    missing = client.delete("/v1/apps/web")
    wrong = client.delete("/v1/apps/web", params={"confirm": "other"})

    for response in (missing, wrong):
        assert response.status_code == 422
        assert "confirm with its name" in response.json()["detail"]
        assert "--confirm web" in response.json()["detail"]
    assert client.get("/v1/apps/web").status_code == 200


def test_an_unknown_app_cannot_be_destroyed(client: TestClient) -> None:
    response = client.delete("/v1/apps/nope", params={"confirm": "nope"})

    assert response.status_code == 404 and response.json() == {"detail": "app 'nope' not found"}


def test_destroying_waits_for_a_pipeline_under_way(client: TestClient, staging: str) -> None:
    client.post("/v1/apps/web/pipelines", json={"environment": "staging"})

    response = client.delete("/v1/apps/web", params={"confirm": "web"})

    assert response.status_code == 409
    assert "destroy it once that has ended" in response.json()["detail"]
    assert client.get("/v1/apps/web").status_code == 200


def test_a_destroyed_app_runs_nothing_and_its_name_is_free(
    client: TestClient, staging: str, settings: Settings
) -> None:
    client.post("/v1/apps/web/environments", json={"name": "production", "domains": ["web.test"]})
    make_live(settings, [{"type": "web", "status": "running", "pid": 1, "server": "s-web-1"}])
    _pipelines_ended(settings)
    assert client.post("/v1/apps/web/schedules", json=SCHEDULE).status_code == 201
    hook = {"url": "http://127.0.0.1:9999/hook", "events": ["pipeline.failed"]}
    assert client.post("/v1/apps/web/subscriptions", json=hook).status_code == 201
    assert client.put("/v1/apps/web/hooks", json={"github_repository": "o/r"}).status_code == 200

    response = client.delete("/v1/apps/web", params={"confirm": "web"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["environments"], body["stopped"]) == (
        "web",
        ["production", "staging"],
        1,
    )
    assert client.get("/v1/apps/web").status_code == 404
    assert client.get("/v1/apps").json() == []
    with _session(settings) as session:
        app = session.exec(select(App)).one()
        assert app.destroyed_at is not None and app.name == f"web~{app.id.hex}"
        deployment = session.exec(select(Deployment)).one()  # the record stays
        assert deployment.status == DeploymentStatus.STOPPED and deployment.ended_at is not None
        assert all(
            e.domains == [] and e.run_host is None for e in session.exec(select(Environment))
        )
        assert routes.environment_routes(session=session) == []  # the routers forget its names
        assert all(s.deleted_at is not None for s in session.exec(select(Schedule)))
        assert all(s.deleted_at is not None for s in session.exec(select(Subscription)))
        assert session.exec(select(WebhookConfig)).first() is None
    # Its name, host names and domain are anyone's again.
    assert client.post("/v1/apps", json={"name": "web", "repo": "/srv/new"}).status_code == 201
    again = client.post(
        "/v1/apps/web/environments", json={"name": "staging", "domains": ["web.test"]}
    )
    assert again.status_code == 201, again.text


def test_a_destroyed_environments_router_slot_waits_out_its_quarantine(
    client: TestClient, staging: str, settings: Settings
) -> None:
    with _session(settings) as session:
        slot = session.exec(select(Environment.route_slot)).one()
    client.delete("/v1/apps/web", params={"confirm": "web"})
    client.post("/v1/apps", json={"name": "next", "repo": "/srv/next"})

    soon = client.post("/v1/apps/next/environments", json={"name": "one"}).json()
    with _session(settings) as session:
        app = session.exec(select(App).where(col(App.destroyed_at).is_not(None))).one()
        assert app.destroyed_at is not None
        app.destroyed_at -= destroy.SLOT_QUARANTINE + timedelta(seconds=1)
        session.add(app)
        session.commit()
    later = client.post("/v1/apps/next/environments", json={"name": "two"}).json()

    with _session(settings) as session:
        slots = dict(session.exec(select(Environment.name, Environment.route_slot)).all())
    assert slots["one"] != slot  # still the destroyed one's: its routers may hold its servers
    assert slots["two"] == slot  # given back once every router has long emptied it
    assert slots["staging"] is None
    assert soon["name"] == "one" and later["name"] == "two"


def test_destroying_needs_an_admin_token(client: TestClient, staging: str) -> None:
    token = client.post("/v1/tokens", json={"name": "ci", "scopes": ["deploy:staging"]}).json()

    response = client.delete(
        "/v1/apps/web",
        params={"confirm": "web"},
        headers={"Authorization": f"Bearer {token['token']}"},
    )

    assert response.status_code == 403
