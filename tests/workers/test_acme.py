"""Certificate orders against a real ACME CA (pebble): issued, retried with backoff while the
CA is down (the old certificate still served), renewed, and refused validations recorded."""

# ruff: noqa: F811  (the fixtures imported from tests.embedded are parameters of the same name)

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
import requests
from cryptography import x509
from sqlmodel import Session, select

from shipyard.shared import acme_challenges
from shipyard.shared.db import get_engine
from shipyard.shared.models import AcmeAccount, App, Certificate, utcnow
from shipyard.shared.schemas import AppCreate, EnvironmentCreate
from shipyard.shared.services import apps, certificates
from shipyard.shared.settings import Settings
from shipyard.workers.acme import order_due
from tests.acme_support import Pebble, free_port, running_pebble
from tests.embedded import (  # noqa: F401  (fixtures)
    _no_shipyard_environment,
    schema_template,
    settings,
)

pytestmark = pytest.mark.network

DOMAIN = "shop.example.test"


class _Responder(BaseHTTPRequestHandler):
    """What a router does for the CA: answer a challenge from the broker."""

    server: _ChallengeServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        token = self.path.removeprefix(acme_challenges.PATH_PREFIX)
        answer = None
        if self.path.startswith(acme_challenges.PATH_PREFIX):
            answer = acme_challenges.get(self.server.broker, self.server.namespace, token)
        body = (answer or "not found").encode()
        self.send_response(200 if answer else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.asked.append(token)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _ChallengeServer(ThreadingHTTPServer):
    def __init__(self, port: int, broker: redis.Redis, namespace: str) -> None:
        super().__init__(("127.0.0.1", port), _Responder)
        self.broker, self.namespace = broker, namespace
        self.asked: list[str] = []


@pytest.fixture
def broker(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def responder(broker: redis.Redis, broker_namespace: str) -> Iterator[_ChallengeServer]:
    server = _ChallengeServer(free_port(), broker, broker_namespace)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def pebble(tmp_path: Path, responder: _ChallengeServer) -> Iterator[Pebble]:
    with running_pebble(tmp_path / "pebble", http_port=responder.server_address[1]) as ca:
        yield ca


def _settings(settings: Settings, pebble: Pebble, broker_namespace: str) -> Settings:
    return settings.model_copy(
        update={
            "acme_directory_url": pebble.directory_url,
            "acme_ca_bundle": pebble.ca_bundle,
            "acme_email": "ops@example.test",
            "broker_namespace": broker_namespace,
        }
    )


@pytest.fixture
def acme_settings(settings: Settings, pebble: Pebble, broker_namespace: str) -> Settings:
    return _settings(settings, pebble, broker_namespace)


@pytest.fixture
def shop(acme_settings: Settings) -> None:
    """An app whose environment has DOMAIN: a pending ACME certificate."""
    with Session(get_engine(acme_settings.sqlalchemy_url)) as session:
        app = apps.create_app(session=session, data=AppCreate(name="shop", repo="/srv/shop"))
        apps.create_environment(
            session=session, app=app, data=EnvironmentCreate(name="live", domains=[DOMAIN])
        )
        session.commit()


def _row(settings: Settings) -> Certificate:
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        return session.exec(select(Certificate).where(Certificate.domain == DOMAIN)).one()


def _order(settings: Settings, broker: redis.Redis) -> list[tuple[str, bool, str | None]]:
    outcomes = order_due(settings=settings, box=settings.secret_box(), challenges_redis=broker)
    return [(o.domain, o.issued, o.error) for o in outcomes]


def _force_renewal(settings: Settings) -> None:
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        environment = apps.environment_by_names(session=session, app="shop", name="live")
        certificates.force_renewal(
            session=session, environment=environment, domain=DOMAIN, acme_enabled=True
        )
        session.commit()


def _served_fingerprints(settings: Settings) -> list[str]:
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        served = certificates.served(session=session, box=settings.secret_box())
    return [s.fingerprint for s in served if s.domain == DOMAIN]


def test_pebble_issues_a_certificate_that_chains_to_its_root(
    acme_settings: Settings,
    shop: None,
    pebble: Pebble,
    broker: redis.Redis,
    broker_namespace: str,
    responder: _ChallengeServer,
) -> None:
    assert _order(acme_settings, broker) == [(DOMAIN, True, None)]

    row = _row(acme_settings)
    assert (row.source, row.status, row.attempts, row.error) == ("acme", "issued", 0, None)
    assert row.key is not None and "PRIVATE KEY" not in row.key
    assert row.not_after is not None and row.not_after > utcnow() + timedelta(days=30)
    assert row.issuer is not None and "Pebble" in row.issuer
    chain = x509.load_pem_x509_certificates((row.cert_pem or "").encode())
    root = x509.load_pem_x509_certificate(pebble.root_pem().encode())
    chain[0].verify_directly_issued_by(chain[1])
    chain[-1].verify_directly_issued_by(root)
    assert chain[0].extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DNSName) == [DOMAIN]
    assert _served_fingerprints(acme_settings) == [row.fingerprint]
    # The CA asked for the challenge, and it is off the broker now.
    (token,) = set(responder.asked)
    assert acme_challenges.get(broker, broker_namespace, token) is None
    with Session(get_engine(acme_settings.sqlalchemy_url)) as session:
        (account,) = session.exec(select(AcmeAccount)).all()
    assert account.directory_url == pebble.directory_url and account.uri
    assert "PRIVATE KEY" not in account.key
    # Nothing is due any more.
    assert _order(acme_settings, broker) == []


def test_while_the_ca_is_down_the_renewal_backs_off_and_the_old_certificate_stays(
    acme_settings: Settings, shop: None, pebble: Pebble, broker: redis.Redis
) -> None:
    assert _order(acme_settings, broker) == [(DOMAIN, True, None)]
    old = _row(acme_settings)
    _force_renewal(acme_settings)
    pebble.stop()

    ((domain, issued, error),) = _order(acme_settings, broker)

    assert (domain, issued) == (DOMAIN, False)
    assert error is not None and error.startswith("cannot reach the ACME CA at https://127.0.0.1")
    failed = _row(acme_settings)
    assert (failed.status, failed.attempts, failed.fingerprint) == ("issued", 1, old.fingerprint)
    assert failed.next_attempt_at is not None
    wait = (failed.next_attempt_at - utcnow()).total_seconds()
    assert 50 < wait <= 60
    assert _served_fingerprints(acme_settings) == [old.fingerprint]
    assert _order(acme_settings, broker) == []  # not before the backoff is over

    # The CA is back (having forgotten every account): the renewal goes through.
    pebble.start()
    _force_renewal(acme_settings)
    assert _order(acme_settings, broker) == [(DOMAIN, True, None)]
    renewed = _row(acme_settings)
    assert renewed.fingerprint != old.fingerprint
    assert (renewed.status, renewed.attempts, renewed.error) == ("issued", 0, None)
    assert _served_fingerprints(acme_settings) == [renewed.fingerprint]


def test_a_challenge_nobody_answers_fails_the_first_order_with_the_cas_reason(
    tmp_path: Path, settings: Settings, broker: redis.Redis, broker_namespace: str
) -> None:
    nothing_there = free_port()
    with running_pebble(tmp_path / "pebble", http_port=nothing_there) as ca:
        acme_settings = _settings(settings, ca, broker_namespace)
        with Session(get_engine(acme_settings.sqlalchemy_url)) as session:
            app: App = apps.create_app(session=session, data=AppCreate(name="shop", repo="/s"))
            apps.create_environment(
                session=session, app=app, data=EnvironmentCreate(name="live", domains=[DOMAIN])
            )
            session.commit()

        ((domain, issued, error),) = _order(acme_settings, broker)

    assert (domain, issued) == (DOMAIN, False)
    assert error is not None and "urn:ietf:params:acme:error:connection" in error
    row = _row(acme_settings)
    assert (row.status, row.attempts, row.error) == ("failed", 1, error)
    assert _served_fingerprints(acme_settings) == []


def test_nothing_is_ordered_when_acme_is_off(settings: Settings, broker: redis.Redis) -> None:
    off = settings.model_copy(update={"acme_directory_url": ""})

    assert order_due(settings=off, box=off.secret_box(), challenges_redis=broker) == []


class _HungCA:
    """A CA whose orders time out (its directory answered, nothing after)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def issue(self, domain: str) -> tuple[str, str]:
        self.asked.append(domain)
        raise requests.ReadTimeout("read timed out (10 s)")


def test_a_hung_ca_costs_one_timeout_not_one_per_domain(
    settings: Settings, broker: redis.Redis
) -> None:
    hung = _HungCA()
    quiet = settings.model_copy(update={"acme_directory_url": "https://ca.example.test/dir"})
    with Session(get_engine(quiet.sqlalchemy_url)) as session:
        app = apps.create_app(session=session, data=AppCreate(name="shop", repo="/srv/shop"))
        apps.create_environment(
            session=session,
            app=app,
            data=EnvironmentCreate(name="live", domains=["a.example.test", "b.example.test"]),
        )
        session.commit()

    outcomes = order_due(
        settings=quiet,
        box=quiet.secret_box(),
        challenges_redis=broker,
        connect=lambda: hung,  # type: ignore[arg-type,return-value]
    )

    assert len(hung.asked) == 1  # the second order did not wait for the CA again
    assert [o.issued for o in outcomes] == [False, False]
    assert all(o.error and "cannot reach the ACME CA" in o.error for o in outcomes)
