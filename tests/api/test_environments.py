"""Environments over the API: persistent storage, and the processes' output (`/logs`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from shipyard.api.routers.logs import _attach
from shipyard.shared.app_logs import Follower
from shipyard.shared.db import get_engine
from shipyard.shared.services import apps, config, deployments
from shipyard.shared.settings import Settings
from tests.shared.factories import make_artifact, make_pipeline, make_release

SECRET = "hunter2-database-password"


def make_live(settings: Settings, processes: list[dict[str, Any]]) -> None:
    """A live deployment whose release carries the environment's current config."""
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        app = apps.get_app(session=session, name="web")
        environment = apps.get_environment(session=session, app=app, name="staging")
        current = config.current_config(session=session, environment=environment)
        release = make_release(session, app, environment, make_artifact(session, app))
        release.config_version_id = current.id
        session.add(release)
        pipeline = make_pipeline(session, app, environment)
        deployment = deployments.begin_deployment(
            session=session, pipeline_id=pipeline.id, release=release, cause="deploy"
        )
        assert deployment is not None
        deployments.go_live(session=session, deployment=deployment, processes=processes)
        session.commit()


def test_an_environment_may_name_its_storage_directory(client: TestClient) -> None:
    client.post("/v1/apps", json={"name": "web", "repo": "/srv/web"})

    created = client.post(
        "/v1/apps/web/environments", json={"name": "prod", "storage_dir": "/srv/web-data"}
    )

    assert created.status_code == 201, created.text
    assert created.json()["storage_dir"] == "/srv/web-data"
    storage = client.get("/v1/apps/web/environments/prod/storage").json()
    assert storage == {
        "variable": "SHIPYARD_STORAGE_DIR",
        "configured": "/srv/web-data",
        "location": None,  # nothing has run yet
    }


@pytest.mark.parametrize("path", ["relative/dir", "/srv/../etc", ""])
def test_a_storage_directory_must_be_absolute_and_plain(client: TestClient, path: str) -> None:
    client.post("/v1/apps", json={"name": "web", "repo": "/srv/web"})

    response = client.post("/v1/apps/web/environments", json={"name": "prod", "storage_dir": path})

    assert response.status_code == 422
    assert "storage_dir" in response.text


def test_storage_shows_where_the_live_deployment_keeps_it(
    client: TestClient, staging: str, settings: Settings
) -> None:
    make_live(settings, [{"type": "web", "status": "running", "storage": "/data/web/staging"}])

    storage = client.get(f"{staging}/storage").json()

    assert storage["location"] == "/data/web/staging" and storage["configured"] is None


def test_the_storage_variable_cannot_be_set_as_config(client: TestClient, staging: str) -> None:
    response = client.patch(f"{staging}/config", json={"vars": {"SHIPYARD_STORAGE_DIR": "/x"}})

    assert response.status_code == 422
    assert "SHIPYARD_STORAGE_DIR" in response.text


def test_logs_give_the_last_lines_of_each_process_labelled_and_redacted(
    client: TestClient, staging: str, settings: Settings, tmp_path: Path
) -> None:
    web, worker = tmp_path / "web.log", tmp_path / "worker.log"
    web.write_text(f"booting\nlistening on 8000\nconnected with {SECRET}\n")
    worker.write_text("waiting for jobs\n")
    client.patch(
        f"{staging}/config",
        json={"vars": {"DB_PASSWORD": SECRET}, "secrets": ["DB_PASSWORD"], "deploy": False},
    )
    make_live(settings, [{"type": "web", "log": str(web)}, {"type": "worker", "log": str(worker)}])

    everything = client.get(f"{staging}/logs", params={"lines": 2})
    web_only = client.get(f"{staging}/logs", params={"process": "web", "lines": 1})

    assert everything.status_code == 200
    assert everything.headers["content-type"].startswith("text/plain")
    assert everything.text == (
        "web.1: listening on 8000\nweb.1: connected with <redacted>\nworker.1: waiting for jobs\n"
    )
    assert web_only.text == "web.1: connected with <redacted>\n"
    assert SECRET not in everything.text


def test_a_followed_process_carried_over_to_the_next_deployment_is_read_once(
    tmp_path: Path,
) -> None:
    web, worker, new_worker = (tmp_path / f"{name}.log" for name in ("web", "w1", "w2"))
    for path in (web, worker, new_worker):
        path.write_text("started\n")
    follower = Follower()
    first = _attach(
        follower,
        [{"type": "web", "log": str(web)}, {"type": "worker", "log": str(worker)}],
        None,
        1,
    )

    # `ps:restart worker`: the next deployment records the same web process, a new worker.
    after = [{"type": "web", "log": str(web)}, {"type": "worker", "log": str(new_worker)}]
    then = _attach(follower, after, None, 1)
    with web.open("a") as output:
        output.write("served\n")

    assert first == ["web.1: started\n", "worker.1: started\n"]
    assert then == ["worker.1: started\n"]
    assert follower.poll() == ["web.1: served\n"]


def test_logs_of_an_environment_where_nothing_is_live_are_404(
    client: TestClient, staging: str
) -> None:
    response = client.get(f"{staging}/logs")

    assert response.status_code == 404
    assert "nothing is live" in response.json()["detail"]


def test_logs_of_a_process_type_the_release_does_not_have_are_404(
    client: TestClient, staging: str, settings: Settings, tmp_path: Path
) -> None:
    make_live(settings, [{"type": "web", "log": str(tmp_path / "web.log")}])

    response = client.get(f"{staging}/logs", params={"process": "clock"})

    assert response.status_code == 404
    assert "no 'clock' process" in response.json()["detail"]


def test_scaling_sets_the_formation_and_needs_the_environments_deploy_scope(
    client: TestClient, anonymous: TestClient, staging: str
) -> None:
    body = {"name": "prod-deployer", "scopes": ["deploy:production"]}
    token = client.post("/v1/tokens", json=body).json()["token"]

    refused = anonymous.patch(
        f"{staging}/formation",
        json={"processes": {"web": 2}},
        headers={"Authorization": f"Bearer {token}"},
    )
    scaled = client.patch(f"{staging}/formation", json={"processes": {"web": 2, "worker": 0}})

    assert refused.status_code == 403
    assert scaled.status_code == 200, scaled.text
    assert scaled.json() == {"formation": {"web": 2, "worker": 0}, "pipeline_id": None}
    assert client.get(f"{staging}/formation").json()["formation"] == {"web": 2, "worker": 0}


@pytest.mark.parametrize(
    "body", [{"processes": {}}, {"processes": {"web": -1}}, {"processes": {"web": 101}}, {}]
)
def test_a_formation_out_of_bounds_is_422(
    client: TestClient, staging: str, body: dict[str, Any]
) -> None:
    assert client.patch(f"{staging}/formation", json=body).status_code == 422
