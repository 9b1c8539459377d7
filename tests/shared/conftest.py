"""Fixtures for the shared/ tests: a clean environment, settings and a migrated SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session

from shipyard.shared.db import get_engine
from shipyard.shared.settings import Settings
from tests.embedded import _no_shipyard_environment, schema_template
from tests.shared.database import copy_database


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-mode settings in a fresh data dir."""
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def db_url(tmp_path: Path, schema_template: Path) -> Iterator[str]:
    """A SQLite file of this test's own, at the newest schema."""
    url = copy_database(schema_template, tmp_path / "shipyard.db")
    yield url
    get_engine(url).dispose()


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    """A session on the migrated database."""
    with Session(get_engine(db_url)) as session:
        yield session
