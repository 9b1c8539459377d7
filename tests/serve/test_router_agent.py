"""`shipyard router`: what it hands its supervisor for HAProxy."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.router import haproxy
from shipyard.serve import router_agent
from shipyard.serve.supervisor import ChildSpec
from shipyard.shared import migrate
from shipyard.shared.db import get_engine, session_scope
from shipyard.shared.schemas import AppCreate, EnvironmentCreate
from shipyard.shared.services import apps
from shipyard.shared.settings import Settings
from tests.integration.stack import free_port
from tests.router.test_router import started


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
def test_host_names_no_environment_answers_to_are_forgotten(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", router_port=free_port(), router_slots=4)
    settings.data_dir.mkdir(parents=True)
    migrate.upgrade(settings.sqlalchemy_url)
    with session_scope(settings.sqlalchemy_url) as session:
        app = apps.create_app(session=session, data=AppCreate(name="web", repo="/srv/web"))
        environment = apps.create_environment(
            session=session,
            app=app,
            data=EnvironmentCreate(name="staging", domains=["web.example.com"]),
        )
        slot = haproxy.backend_name(int(environment.route_slot or 0))
        other = haproxy.backend_name(int(environment.route_slot or 0) + 1)
    try:
        with started(settings) as api:
            api.set_route(settings.router_map, "staging.web.localhost", slot)
            api.set_route(settings.router_map, "production.gone.localhost", slot)
            # Its own domain, pointing to a slot it no longer has (given to another since).
            api.set_route(settings.router_map, "web.example.com", other)

            forgotten = router_agent.forget_routes(settings)

            assert forgotten == ["production.gone.localhost", "web.example.com"]
            assert api.routes(settings.router_map) == {"staging.web.localhost": slot}
    finally:
        get_engine(settings.sqlalchemy_url).dispose()
