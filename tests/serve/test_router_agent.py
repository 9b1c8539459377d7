"""`shipyard router`: what it hands its supervisor for HAProxy, and the router brought back to
what the store says (a canary's servers kept)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.router import haproxy
from shipyard.serve import router_agent
from shipyard.serve.supervisor import ChildSpec
from shipyard.shared import migrate
from shipyard.shared.db import get_engine, session_scope
from shipyard.shared.models import ShareStatus
from shipyard.shared.schemas import AppCreate, EnvironmentCreate
from shipyard.shared.services import apps, deployments, shares
from shipyard.shared.settings import Settings
from tests.integration.stack import free_port
from tests.router.test_router import started
from tests.shared.factories import make_artifact, make_pipeline, make_release


class _Captured(Exception):
    """Stops the agent once its HAProxy child is known."""


def test_haproxy_is_supervised_with_a_scrubbed_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    # In the agent's environment, as a container or a unit file would put them.
    monkeypatch.setenv("SHIPYARD_ADMIN_TOKEN", "shp_admin-token-that-must-not-leak")
    monkeypatch.setenv("SHIPYARD_SECRET_KEY", "secret-key-that-must-not-leak")
    specs: list[ChildSpec] = []

    class CapturingSupervisor:
        def __init__(self, children: list[ChildSpec], **_: object) -> None:
            specs.extend(children)
            raise _Captured

    monkeypatch.setattr(router_agent, "Supervisor", CapturingSupervisor)

    with pytest.raises(_Captured):
        router_agent.run(settings)

    (haproxy,) = specs
    assert haproxy.env is not None
    assert "PATH" in haproxy.env
    assert not {name for name in haproxy.env if name.startswith("SHIPYARD_")}
    assert "must-not-leak" not in repr(haproxy.env)


@pytest.mark.network
def test_the_router_is_brought_back_to_what_the_store_says(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", router_port=free_port(), router_slots=4)
    settings.data_dir.mkdir(parents=True)
    migrate.upgrade(settings.sqlalchemy_url)
    with session_scope(settings.sqlalchemy_url) as session:
        app = apps.create_app(session=session, data=AppCreate(name="web", repo="/srv/web"))
        environment = apps.create_environment(
            session=session, app=app, data=EnvironmentCreate(name="staging", domains=["web.test"])
        )
        release = make_release(session, app, environment, make_artifact(session, app))
        deployment = deployments.begin_deployment(
            session=session,
            pipeline_id=make_pipeline(session, app, environment).id,
            release=release,
            cause="deploy",
        )
        assert deployment is not None
        live = {"type": "web", "status": "running", "port": 1, "server": "live-web-1-p1"}
        deployments.go_live(session=session, deployment=deployment, processes=[live])
        slot = int(environment.route_slot or 0)
    own, other = haproxy.backend_name(slot), haproxy.backend_name(slot + 1)
    try:
        with started(settings) as api:
            api.set_route(settings.router_map, "staging.web.localhost", own)
            api.set_route(settings.router_map, "production.gone.localhost", own)
            # Its own domain, pointing to a slot it no longer has (given to another since).
            api.set_route(settings.router_map, "web.test", other)
            for backend, server in (
                (own, "live-web-1-p1"),
                (own, "gone-web-1-p2"),
                (other, "x-p3"),
            ):
                api.add_server(backend, server, "127.0.0.1", 9)

            changed = router_agent.sync_routes(settings)

            assert changed == [
                "route production.gone.localhost",
                "route web.test",
                f"server {own}/gone-web-1-p2",
                f"server {other}/x-p3",
            ]
            assert api.routes(settings.router_map) == {
                "staging.web.localhost": own,
                "web.test": own,
            }
            # Besides the slots' backends, only the ACME challenges' answerer has a server.
            assert set(api.all_servers()) == {own, haproxy.ACME_CHALLENGE_BACKEND}
            assert set(api.servers(own)) == {"live-web-1-p1"}
            assert router_agent.sync_routes(settings) == []  # nothing left to change
    finally:
        get_engine(settings.sqlalchemy_url).dispose()


@pytest.mark.network
def test_a_canarys_servers_are_kept_before_its_deployment_goes_live(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", router_port=free_port(), router_slots=4)
    settings.data_dir.mkdir(parents=True)
    migrate.upgrade(settings.sqlalchemy_url)
    with session_scope(settings.sqlalchemy_url) as session:
        app = apps.create_app(session=session, data=AppCreate(name="web", repo="/srv/web"))
        environment = apps.create_environment(
            session=session, app=app, data=EnvironmentCreate(name="staging")
        )
        deployed = []
        for label in ("live", "canary"):
            release = make_release(session, app, environment, make_artifact(session, app, label))
            deployment = deployments.begin_deployment(
                session=session,
                pipeline_id=make_pipeline(session, app, environment).id,
                release=release,
                cause="deploy",
            )
            assert deployment is not None
            deployed.append(deployment)
        live, canary = deployed
        web = {"type": "web", "status": "running", "port": 1}
        deployments.go_live(
            session=session, deployment=live, processes=[{**web, "server": "live-web-1-p1"}]
        )
        # The canary's processes run and take their share while its deployment starts: on one
        # host, recorded on the deployment; spread over several, on each host's share.
        deployments.set_processes(
            session=session,
            deployment_id=canary.id,
            processes=[{**web, "port": 2, "server": "canary-web-1-p2"}],
        )
        shares.ask(session=session, deployment_id=canary.id, hosts=["alpha", "beta"], attempt=1)
        shares.advance(
            session=session,
            deployment_id=canary.id,
            host="beta",
            attempt=1,
            status=ShareStatus.READY,
            processes=[{**web, "port": 4, "server": "canary-web-2-p4"}],
        )
        own = haproxy.backend_name(int(environment.route_slot or 0))
    try:
        with started(settings) as api:
            kept = ("live-web-1-p1", "canary-web-1-p2", "canary-web-2-p4")
            for server in (*kept, "gone-web-1-p3"):
                api.add_server(own, server, "127.0.0.1", 9)

            assert router_agent.sync_routes(settings) == [f"server {own}/gone-web-1-p3"]

            assert set(api.servers(own)) == set(kept)
    finally:
        get_engine(settings.sqlalchemy_url).dispose()
