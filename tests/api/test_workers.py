"""`GET /v1/workers`: every queue with the workers whose heartbeat is fresh."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import fakeredis
import pytest
import redis
from fastapi.testclient import TestClient
from sqlmodel import Session

from shipyard.api.main import create_app
from shipyard.shared.db import get_engine
from shipyard.shared.events import Event
from shipyard.shared.models import Deployment, DeploymentStatus
from shipyard.shared.schemas import AppCreate, EnvironmentCreate
from shipyard.shared.services import apps, hosts, workers
from shipyard.shared.settings import Settings
from tests.shared.factories import make_artifact, make_release


@pytest.fixture
def broker() -> Iterator[fakeredis.FakeRedis]:
    """The broker's Redis as the workers see it."""
    client = fakeredis.FakeRedis()
    yield client
    client.close()


@pytest.fixture
def api(
    settings: Settings, events: list[Event], broker: fakeredis.FakeRedis
) -> Iterator[TestClient]:
    """The API asking `broker` which workers are live, with the admin token."""
    probe = partial(workers.live_workers, redis_client=broker, namespace=settings.broker_namespace)
    app = create_app(settings, publisher=events.append, workers_probe=probe)
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {settings.api_token()}"
        yield client


def _beat(broker: redis.Redis, namespace: str, hostname: str, *queues: str) -> None:
    workers.record_heartbeat(
        redis_client=broker, namespace=namespace, queues=queues, hostname=hostname
    )


def test_workers_lists_every_queue_with_the_workers_whose_heartbeat_is_fresh(
    api: TestClient, broker: fakeredis.FakeRedis, settings: Settings
) -> None:
    _beat(broker, settings.broker_namespace, "build@b", "build")
    _beat(broker, settings.broker_namespace, "build@a", "build")
    _beat(broker, settings.broker_namespace, "notify@a", "notify")

    response = api.get("/v1/workers")

    assert response.status_code == 200
    assert response.json() == [
        {"queue": "build", "workers": ["build@a", "build@b"]},
        {"queue": "release", "workers": []},
        {"queue": "run", "workers": []},
        {"queue": "notify", "workers": ["notify@a"]},
    ]


def test_a_worker_that_shut_down_is_no_longer_listed(
    api: TestClient, broker: fakeredis.FakeRedis, settings: Settings
) -> None:
    _beat(broker, settings.broker_namespace, "run@a", "run")
    workers.forget_worker(
        redis_client=broker, namespace=settings.broker_namespace, queues=["run"], hostname="run@a"
    )

    assert api.get("/v1/workers").json()[2] == {"queue": "run", "workers": []}


def test_a_read_token_may_list_workers_and_no_token_may_not(api: TestClient) -> None:
    created = api.post("/v1/tokens", json={"name": "dashboard", "scopes": ["read"]}).json()

    as_reader = api.get("/v1/workers", headers={"Authorization": f"Bearer {created['token']}"})
    anonymous = api.get("/v1/workers", headers={"Authorization": ""})

    assert as_reader.status_code == 200
    assert anonymous.status_code == 401


def test_a_broker_that_cannot_be_asked_is_a_503(settings: Settings, events: list[Event]) -> None:
    def broker_away() -> workers.LiveWorkers:
        raise redis.ConnectionError("Connection refused")

    app = create_app(settings, publisher=events.append, workers_probe=broker_away)
    with TestClient(app) as client:
        response = client.get(
            "/v1/workers", headers={"Authorization": f"Bearer {settings.api_token()}"}
        )

    assert response.status_code == 503
    assert response.json()["detail"].startswith("cannot ask the broker which workers are alive")


def test_with_the_broker_replaced_and_no_probe_no_queue_has_workers(client: TestClient) -> None:
    assert client.get("/v1/workers").json() == [
        {"queue": queue, "workers": []} for queue in ("build", "release", "run", "notify")
    ]


def test_by_default_the_api_reads_the_broker_of_its_settings_under_their_namespace(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, broker: fakeredis.FakeRedis
) -> None:
    settings = settings.model_copy(update={"broker_namespace": "install-2"})
    opened: list[str] = []

    def from_url(url: str, **_: Any) -> fakeredis.FakeRedis:
        opened.append(url)
        return broker

    monkeypatch.setattr("shipyard.api.main.redis.Redis.from_url", from_url)
    _beat(broker, "install-2", "release@a", "release")
    _beat(broker, "install-1", "release@b", "release")
    app = create_app(settings)

    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {settings.api_token()}"
        response = client.get("/v1/workers")

    assert opened == [settings.redis_url]
    assert response.json()[1] == {"queue": "release", "workers": ["release@a"]}


def test_hosts_lists_each_run_host_with_its_pool_placements_and_processes(
    api: TestClient, broker: fakeredis.FakeRedis, settings: Settings
) -> None:
    _beat(broker, settings.broker_namespace, "run@alpha", "run", "run.alpha")
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        _two_placed_environments(session)

    response = api.get("/v1/hosts")

    assert response.status_code == 200
    assert response.json() == [
        {
            "name": "alpha",
            "state": "up",
            "workers": ["run@alpha"],
            "environments": ["web/staging"],
            "processes": 0,
            "unpacked_bytes": None,
        },
        {
            "name": "beta",
            "state": "down",
            "workers": [],
            "environments": ["web/production"],
            "processes": 2,
            "unpacked_bytes": 48_128,  # as beta's supervision last measured
        },
    ]


def _two_placed_environments(session: Session) -> None:
    """web/staging placed on alpha; web/production on beta, live there with two processes."""
    app = apps.create_app(session=session, data=AppCreate(name="web", repo="/srv/web"))
    staging = apps.create_environment(
        session=session, app=app, data=EnvironmentCreate(name="staging")
    )
    staging.run_host = "alpha"
    production = apps.create_environment(
        session=session, app=app, data=EnvironmentCreate(name="production")
    )
    production.run_host = "beta"  # whose run pool is not up
    session.commit()
    release = make_release(session, app, production, make_artifact(session, app))
    session.add(
        Deployment(
            environment_id=production.id,
            release_id=release.id,
            status=DeploymentStatus.LIVE,
            processes=[{"type": "web", "host": "beta"}, {"type": "worker", "host": "beta"}],
        )
    )
    hosts.record_disk(session=session, host="beta", unpacked_bytes=48_128)
    session.commit()


def test_an_environment_is_placed_only_on_a_run_host_that_is_up(
    api: TestClient, broker: fakeredis.FakeRedis, settings: Settings
) -> None:
    _beat(broker, settings.broker_namespace, "run@alpha", "run", "run.alpha")
    assert api.post("/v1/apps", json={"name": "web", "repo": "/srv/web"}).status_code == 201

    placed = api.post("/v1/apps/web/environments", json={"name": "staging", "run_host": "alpha"})
    typo = api.post("/v1/apps/web/environments", json={"name": "prod", "run_host": "aplha"})

    assert placed.status_code == 201 and placed.json()["run_host"] == "alpha"
    assert typo.status_code == 422
    assert typo.json()["detail"] == (
        "run host 'aplha' is not up (no run worker consumes run.aplha); run hosts up now: alpha"
    )


def test_an_admin_drains_a_run_host_and_takes_it_back(
    api: TestClient, broker: fakeredis.FakeRedis, settings: Settings
) -> None:
    _beat(broker, settings.broker_namespace, "run@alpha", "run", "run.alpha")
    reader = api.post("/v1/tokens", json={"name": "dash", "scopes": ["read"]}).json()["token"]

    drained = api.post("/v1/hosts/alpha/drain")
    as_reader = api.post("/v1/hosts/alpha/drain", headers={"Authorization": f"Bearer {reader}"})
    placed = api.post("/v1/apps", json={"name": "web", "repo": "/srv/web"})
    refused = api.post("/v1/apps/web/environments", json={"name": "staging", "run_host": "alpha"})
    resumed = api.post("/v1/hosts/alpha/resume")
    unknown = api.post("/v1/hosts/nowhere/drain")

    assert drained.status_code == 202 and drained.json()["state"] == "draining"
    assert as_reader.status_code == 403
    assert placed.status_code == 201
    assert refused.status_code == 422 and "being drained" in refused.json()["detail"]
    assert resumed.status_code == 200 and resumed.json()["state"] == "up"
    assert unknown.status_code == 404


def test_an_environment_is_spread_over_the_hosts_asked_for_and_moved_by_a_placement_change(
    api: TestClient, broker: fakeredis.FakeRedis, settings: Settings, events: list[Event]
) -> None:
    for host in ("alpha", "beta"):
        _beat(broker, settings.broker_namespace, f"run@{host}", "run", f"run.{host}")
    assert api.post("/v1/apps", json={"name": "web", "repo": "/srv/web"}).status_code == 201

    spread = api.post("/v1/apps/web/environments", json={"name": "staging", "spread": "all"})
    listed = api.post(
        "/v1/apps/web/environments", json={"name": "prod", "hosts": ["beta", "alpha"]}
    )
    both = api.post(
        "/v1/apps/web/environments", json={"name": "qa", "run_host": "alpha", "spread": 2}
    )
    twice = api.post("/v1/apps/web/environments", json={"name": "qa", "hosts": ["beta", "beta"]})
    too_many = api.post("/v1/apps/web/environments", json={"name": "qa", "spread": 3})
    moved = api.put("/v1/apps/web/environments/prod/placement", json={"run_host": "alpha"})
    nowhere = api.put("/v1/apps/web/environments/prod/placement", json={})

    assert spread.status_code == 201
    assert [spread.json()["run_host"], *spread.json()["extra_hosts"]] == ["alpha", "beta"]
    assert listed.status_code == 201
    assert (listed.json()["run_host"], listed.json()["extra_hosts"]) == ("beta", ["alpha"])
    assert both.status_code == 422 and "give one of run_host, hosts and spread" in both.text
    assert twice.status_code == 422 and "lists a run host twice" in twice.text
    assert too_many.status_code == 422
    assert too_many.json()["detail"].startswith("cannot spread over 3 run hosts: 2 up")
    # Nothing is live in prod yet: the next deploy runs it there, no pipeline now.
    assert moved.status_code == 202
    assert (moved.json()["run_host"], moved.json()["extra_hosts"]) == ("alpha", [])
    assert moved.json()["pipeline_id"] is None and events == []
    assert nowhere.status_code == 422 and "say where" in nowhere.text
