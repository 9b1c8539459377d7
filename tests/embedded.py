"""Fixtures of the in-process API tests (tests/api, tests/cli): embedded settings on a migrated
SQLite copy, and a list in place of the broker. Imported by those directories' conftest files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.shared.db import get_engine
from shipyard.shared.events import Event
from shipyard.shared.settings import Settings
from tests.shared.database import copy_database, migrated_template


@pytest.fixture(autouse=True)
def _no_shipyard_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read SHIPYARD_* variables: the developer's own must not change a test."""
    for name in list(os.environ):
        if name.startswith("SHIPYARD_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def schema_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real migrations, run once per session."""
    return migrated_template(tmp_path_factory.mktemp("schema"))


@pytest.fixture
def settings(tmp_path: Path, schema_template: Path) -> Iterator[Settings]:
    """Embedded settings in a fresh data dir, its database at the newest schema."""
    settings = Settings(data_dir=tmp_path / "data")
    copy_database(schema_template, settings.data_dir / "shipyard.db")
    yield settings
    get_engine(settings.sqlalchemy_url).dispose()


@pytest.fixture
def events() -> list[Event]:
    """What the API published, in order (the broker is the edge this replaces)."""
    return []
