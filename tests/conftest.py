"""Fixtures for real services: Redis, PostgreSQL, and Shipyard's own processes; the markers
of the tests that use them (`-m docker`, `-m network`, … select by what a test needs).

With SHIPYARD_REQUIRE_SERVICES=1 (as in CI) a missing service fails the test instead of
skipping it, so that no integration test can silently not run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import redis

from tests.repos import git

# Read once, at import: an autouse fixture clears SHIPYARD_* variables before each test runs.
REQUIRE_SERVICES = os.environ.get("SHIPYARD_REQUIRE_SERVICES") == "1"

REDIS_URL = os.environ.get("SHIPYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_DSN = os.environ.get(
    "SHIPYARD_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
REPO_ROOT = Path(__file__).resolve().parent.parent
HELLO = REPO_ROOT / "examples" / "hello"

# The fixtures that need more than the virtualenv, and the marker (kind) of every test using
# one, directly or through other fixtures; pyproject.toml says what each kind needs. A new
# test that uses one is marked without a decorator of its own; tests that start what they need
# themselves carry `pytestmark` or a decorator instead. Matched by name: no other fixture may
# take one of these names.
FIXTURE_KINDS = {
    "docker_engine": "docker",  # tests/docker_support.py
    "chromium": "browser",  # tests/integration/test_dashboard.py
    "redis_url": "network",
    "postgres_server": "network",
    "registry": "network",  # tests/registry_support.py: a docker-registry process
    "private_registry": "network",
    "secured_registry": "network",
    "start_up": "network",  # tests/integration/conftest.py: `shipyard up`
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with the kinds its fixtures need, before `-m` selects (see FIXTURE_KINDS)."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        for kind in sorted({FIXTURE_KINDS[name] for name in names if name in FIXTURE_KINDS}):
            item.add_marker(kind)


def _unavailable(what: str, error: Exception) -> None:
    message = f"{what} is not reachable ({type(error).__name__}: {error})"
    if REQUIRE_SERVICES:
        pytest.fail(message + "; SHIPYARD_REQUIRE_SERVICES=1 makes this a failure")
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A dedicated Redis database, after checking that it answers."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="session")
def broker_namespace(redis_url: str) -> Iterator[str]:
    """A key prefix of this test session's own: concurrent sessions never share a queue.

    Every key under it is deleted afterwards.
    """
    namespace = f"shipyard-test-{uuid.uuid4().hex[:12]}"
    yield namespace
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{namespace}:*"):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL server's maintenance DSN, after checking it answers."""
    try:
        with psycopg.connect(POSTGRES_DSN, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        _unavailable("PostgreSQL", exc)
    return POSTGRES_DSN


@contextmanager
def fresh_database(server_dsn: str) -> Iterator[str]:
    """A new, empty PostgreSQL database (SQLAlchemy URL), dropped on exit."""
    name = f"shipyard_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    base = server_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    url = f"{base}/{name}"
    try:
        yield url
    finally:
        from shipyard.shared.db import get_engine, get_read_engine

        get_engine(url).dispose()
        get_read_engine(url).dispose()
        with psycopg.connect(server_dsn, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture
def hello_repo(tmp_path: Path) -> Path:
    """A git repository holding a copy of examples/hello at its root, with one commit."""
    repo = tmp_path / "hello-repo"
    shutil.copytree(HELLO, repo, ignore=shutil.ignore_patterns("__pycache__"))
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "hello")
    return repo


def commit_file(repo: Path, name: str, content: str, message: str = "change") -> str:
    """Write `name` in `repo`, commit it, and return the new commit SHA."""
    (repo / name).write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")
