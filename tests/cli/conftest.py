"""The CLI against the real API in-process: its HTTP client is pointed at a TestClient."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from api.main import create_app
from cli.main import app as shipyard
from shared.events import Event
from shared.settings import Settings
from tests.embedded import _no_shipyard_environment, events, schema_template, settings

Shipyard = Callable[..., Result]


@pytest.fixture
def publisher(events: list[Event]) -> Callable[[Event], None]:
    """Where the API sends stage events: a list, unless a test replaces it."""
    return events.append


@pytest.fixture
def api(
    settings: Settings,
    publisher: Callable[[Event], None],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[FastAPI]:
    """The API with its lifespan running; every ApiClient the CLI makes talks to it."""
    app = create_app(settings, publisher=publisher)

    def in_process_client(*, base_url: str, headers: dict[str, str], **_: Any) -> TestClient:
        # TestClient is an httpx.Client that calls the ASGI app instead of the network.
        return TestClient(app, base_url=base_url, headers=headers)

    with TestClient(app):
        monkeypatch.setattr("cli.client.httpx.Client", in_process_client)
        monkeypatch.setenv("SHIPYARD_TOKEN", settings.api_token())
        yield app


@pytest.fixture
def run(api: FastAPI) -> Shipyard:
    """`shipyard ARGS…` through Typer's test runner, against the in-process API."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(shipyard, list(args), env={"COLUMNS": "200"})

    return invoke


@pytest.fixture
def staging(run: Shipyard) -> None:
    """App `web` with environment `staging`, made through the CLI."""
    assert run("apps", "create", "web", "--repo", "/srv/web").exit_code == 0
    assert run("envs", "create", "staging", "--app", "web").exit_code == 0
