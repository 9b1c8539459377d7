"""The store collector's worker liveness: pools, heartbeat ages, and a broker that is away."""

from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session

from shipyard.shared.metrics.store import BrokerProbe, StoreCollector
from shipyard.shared.services import workers

NAMESPACE = "shipyard"


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def client(server: fakeredis.FakeServer) -> Iterator[fakeredis.FakeRedis]:
    client = fakeredis.FakeRedis(server=server)
    yield client
    client.close()


def _scrape(session: Session, client: fakeredis.FakeRedis) -> dict[str, dict[str, float]]:
    """Each family's samples, by their labels' values in label-name order, joined with '/'."""
    registry = CollectorRegistry()
    registry.register(
        StoreCollector(session, BrokerProbe(redis_client=client, namespace=NAMESPACE))
    )
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            found.setdefault(sample.name, {})[
                "/".join(v for _, v in sorted(sample.labels.items()))
            ] = sample.value
    return found


def test_live_workers_and_their_heartbeat_age(
    session: Session, client: fakeredis.FakeRedis
) -> None:
    workers.record_heartbeat(
        redis_client=client, namespace=NAMESPACE, queues=["build"], hostname="build@a"
    )
    workers.record_heartbeat(
        redis_client=client, namespace=NAMESPACE, queues=["build", "run"], hostname="x@b"
    )
    # A key that says it was refreshed 7 s ago (the value is when, in Unix seconds).
    ages_before = workers.heartbeat_ages(redis_client=client, namespace=NAMESPACE)
    seen = int(client.get(workers.heartbeat_key(namespace=NAMESPACE, queue="run", hostname="x@b")))
    client.set(workers.heartbeat_key(namespace=NAMESPACE, queue="run", hostname="x@b"), seen - 7)

    scraped = _scrape(session, client)

    assert set(ages_before) == {("build", "build@a"), ("build", "x@b"), ("run", "x@b")}
    assert scraped["shipyard_broker_up"] == {"": 1.0}
    assert scraped["shipyard_workers"] == {"build": 2, "release": 0, "run": 1, "notify": 0}
    ages = scraped["shipyard_worker_heartbeat_age_seconds"]
    assert set(ages) == {"build@a/build", "x@b/build", "x@b/run"}  # hostname/queue
    assert 0 <= ages["build@a/build"] < 5
    assert 7 <= ages["x@b/run"] < 7 + 5


def test_a_broker_that_is_away_is_reported_and_the_store_still_scraped(
    session: Session, client: fakeredis.FakeRedis, server: fakeredis.FakeServer
) -> None:
    server.connected = False

    scraped = _scrape(session, client)

    assert scraped["shipyard_broker_up"] == {"": 0.0}
    assert "shipyard_workers" not in scraped
    assert scraped["shipyard_pipelines"]["queued"] == 0


def test_each_issued_certificate_reports_the_seconds_until_it_expires(
    session: Session, client: fakeredis.FakeRedis
) -> None:
    from datetime import timedelta

    from cryptography.fernet import Fernet

    from shipyard.shared.crypto import SecretBox
    from shipyard.shared.models import utcnow
    from shipyard.shared.schemas import AppCreate, EnvironmentCreate
    from shipyard.shared.services import apps, certificates
    from tests.certificate_support import TestCA

    app = apps.create_app(session=session, data=AppCreate(name="shop", repo="/srv/shop"))
    environment = apps.create_environment(
        session=session,
        app=app,
        data=EnvironmentCreate(name="live", domains=["shop.example.com", "www.example.com"]),
    )
    issued = TestCA().issue("shop.example.com", not_after=utcnow() + timedelta(days=10))
    certificates.upload(
        session=session,
        environment=environment,
        chain_text=issued.chain,
        key_text=issued.key,
        box=SecretBox(Fernet.generate_key()),
    )
    session.commit()

    expiry = _scrape(session, client)["shipyard_certificate_expiry_seconds"]

    # Labels in name order (app, domain, environment); the pending www.example.com has none.
    assert list(expiry) == ["shop/shop.example.com/live"]
    assert 10 * 86400 - 60 < expiry["shop/shop.example.com/live"] <= 10 * 86400
