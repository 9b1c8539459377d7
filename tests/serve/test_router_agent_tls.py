"""`shipyard router` and the store: certificates to serve and host names added since the router
started, brought into a real HAProxy by the agent's passes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog

from shipyard.router import haproxy, tls
from shipyard.serve import router_agent
from shipyard.shared import migrate
from shipyard.shared.db import get_engine, session_scope
from shipyard.shared.models import Environment
from shipyard.shared.schemas import AppCreate, EnvironmentCreate
from shipyard.shared.services import apps, certificates
from shipyard.shared.settings import Settings
from tests.certificate_support import TestCA
from tests.integration.stack import free_port
from tests.router.test_router import started
from tests.router.test_tls import default_certificate, leaf, served_certificate

pytestmark = pytest.mark.network

DOMAIN = "web.example.com"


@dataclass(frozen=True)
class Served:
    domain: str
    pem: str
    redirect: bool = True
    hsts: bool = False


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    made = Settings(
        data_dir=tmp_path / "data",
        router_port=free_port(),
        router_https_port=free_port(),
        router_slots=4,
    )
    made.data_dir.mkdir(parents=True)
    migrate.upgrade(made.sqlalchemy_url)
    yield made
    get_engine(made.sqlalchemy_url).dispose()


def create_environment(settings: Settings, domains: list[str]) -> Environment:
    with session_scope(settings.sqlalchemy_url) as session:
        app = apps.create_app(session=session, data=AppCreate(name="web", repo="/srv/web"))
        return apps.create_environment(
            session=session, app=app, data=EnvironmentCreate(name="staging", domains=domains)
        )


def test_sync_tls_serves_what_the_source_gives_and_nothing_without_an_https_port(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = TestCA()
    issued = ca.issue(DOMAIN)
    given = [Served(DOMAIN, issued.chain + issued.key, hsts=True)]
    monkeypatch.setattr(router_agent, "served_certificates", lambda _: given)
    with started(settings) as api:
        loaded = tls.RouterCertificates(settings)

        changed = router_agent.sync_tls(settings, loaded)

        assert changed == [f"certificate {DOMAIN}", f"redirect {DOMAIN}", f"hsts {DOMAIN}"]
        assert served_certificate(settings, DOMAIN) == leaf(issued)
        given.clear()
        assert router_agent.sync_tls(settings, loaded)[-1] == f"certificate {DOMAIN} removed"
        assert api.routes(tls.https_map(settings)) == {}

    plain = settings.model_copy(update={"router_https_port": None})
    monkeypatch.setattr(router_agent, "served_certificates", pytest.fail)
    assert router_agent.sync_tls(plain, tls.RouterCertificates(plain)) == []


def test_a_certificate_uploaded_to_the_store_is_served(settings: Settings) -> None:
    ca = TestCA()
    issued = ca.issue(DOMAIN)
    environment = create_environment(settings, [DOMAIN])
    with session_scope(settings.sqlalchemy_url) as session:
        certificates.upload(
            session=session,
            environment=session.get_one(Environment, environment.id),
            chain_text=issued.chain,
            key_text=issued.key,
            box=settings.secret_box(),
        )
    with started(settings) as api:
        router_agent.restore(settings)
        loaded = tls.RouterCertificates(settings)

        router_agent.catch_up(settings, loaded)

        assert served_certificate(settings, DOMAIN) == leaf(issued)
        assert api.routes(tls.https_map(settings)) == {DOMAIN: "1"}
        assert router_agent.sync_tls(settings, loaded) == []  # nothing changed since


def test_a_domain_added_to_a_live_environment_is_routed_without_a_deploy(
    settings: Settings,
) -> None:
    environment = create_environment(settings, [])
    backend = haproxy.backend_name(int(environment.route_slot or 0))
    with started(settings) as api:
        router_agent.restore(settings)
        assert router_agent.add_missing_routes(settings) == []
        with session_scope(settings.sqlalchemy_url) as session:
            stored = session.get_one(Environment, environment.id)
            stored.domains = [DOMAIN]
            session.add(stored)

        assert router_agent.add_missing_routes(settings) == [DOMAIN]
        assert api.routes(settings.router_map) == {
            "staging.web.localhost": backend,
            DOMAIN: backend,
        }


def test_a_failing_step_of_catch_up_keeps_neither_the_other_nor_haproxy_from_working(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_environment(settings, [DOMAIN])

    def broken(_: Settings) -> list[object]:
        raise RuntimeError("the store is away")

    monkeypatch.setattr(router_agent, "served_certificates", broken)
    with started(settings) as api, structlog.testing.capture_logs() as logs:
        router_agent.catch_up(settings, tls.RouterCertificates(settings))

        assert DOMAIN in api.routes(settings.router_map)
        assert served_certificate(settings, DOMAIN) == default_certificate(settings)
    failed = [(entry["event"], entry["step"]) for entry in logs if entry["log_level"] == "error"]
    assert failed == [("router.catch_up_failed", "certificates")]
