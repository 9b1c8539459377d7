"""The CLI against the real API in-process: its HTTP client is pointed at a TestClient."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import fakeredis
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from shipyard.api.main import create_app
from shipyard.cli.main import app as shipyard
from shipyard.shared.events import Event
from shipyard.shared.services.workers import WorkersProbe
from shipyard.shared.settings import Settings
from tests.embedded import _no_shipyard_environment, events, schema_template, settings

Shipyard = Callable[..., Result]
# "Now" for the CLI's relative times in tests that freeze it.
NOW = datetime(2026, 12, 1, 21, 34, 56, tzinfo=UTC)


@pytest.fixture
def publisher(events: list[Event]) -> Callable[[Event], None]:
    """Where the API sends stage events: a list, unless a test replaces it."""
    return events.append


@pytest.fixture
def live_workers() -> dict[str, list[str]]:
    """What the API says consumes each queue (queue → hostnames): nothing, unless a test adds."""
    return {}


@pytest.fixture
def workers_asked() -> list[dict[str, list[str]]]:
    """Every answer the API's worker probe gave, in order: how often the CLI asked."""
    return []


@pytest.fixture
def workers_probe(
    live_workers: dict[str, list[str]], workers_asked: list[dict[str, list[str]]]
) -> WorkersProbe:
    """How the API learns which workers are live: `live_workers`, each answer recorded."""

    def probe() -> dict[str, list[str]]:
        workers_asked.append({queue: list(hosts) for queue, hosts in live_workers.items()})
        return live_workers

    return probe


@pytest.fixture
def broker() -> Iterator[fakeredis.FakeRedis]:
    """The broker's Redis as the API sees it (run hosts' inboxes, live output): a fake."""
    client = fakeredis.FakeRedis()
    yield client
    client.close()


@pytest.fixture
def api(
    settings: Settings,
    publisher: Callable[[Event], None],
    workers_probe: WorkersProbe,
    broker: fakeredis.FakeRedis,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[FastAPI]:
    """The API with its lifespan running; every ApiClient the CLI makes talks to it."""
    app = create_app(settings, publisher=publisher, workers_probe=workers_probe, broker=broker)

    def in_process_client(base_url: str, headers: dict[str, str]) -> TestClient:
        # TestClient is an httpx.Client that calls the ASGI app instead of the network.
        return TestClient(app, base_url=base_url, headers=headers)

    with TestClient(app):
        monkeypatch.setattr("shipyard.cli.client.http_client", in_process_client)
        monkeypatch.setenv("SHIPYARD_TOKEN", settings.api_token())
        yield app


@pytest.fixture
def run(api: FastAPI) -> Shipyard:
    """`shipyard ARGS…` through Typer's test runner, against the in-process API; output is
    `columns` wide (200 unless a test says otherwise), its standard input `input`."""
    runner = CliRunner()

    def invoke(*args: str, columns: int = 200, input: str | bytes | None = None) -> Result:
        return runner.invoke(shipyard, list(args), env={"COLUMNS": str(columns)}, input=input)

    return invoke


@pytest.fixture
def staging(run: Shipyard) -> None:
    """App `web` with environment `staging`, made through the CLI."""
    assert run("apps", "create", "web", "--repo", "/srv/web").exit_code == 0
    assert run("envs", "create", "staging", "--app", "web").exit_code == 0


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """The CLI's clock stopped at NOW, so that "3 min ago" is the same on every run."""
    monkeypatch.setattr("shipyard.cli.render.utc_now", lambda: NOW)
    return NOW
