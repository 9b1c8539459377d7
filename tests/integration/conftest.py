"""The distributed stack: `shipyard api` and a `shipyard worker` per queue, Redis + PostgreSQL."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.conftest import commit_file, fresh_database
from tests.integration.stack import SHIPYARD, Stack, free_port, stack_environment
from tests.integration.up import UpFactory, restart_up

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test below this folder `integration` (a conftest's `pytestmark` marks none)."""
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def distributed(
    redis_url: str,
    broker_namespace: str,
    postgres_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """API + build, release and run worker pools as separate processes, on real services."""
    data_dir = tmp_path_factory.mktemp("distributed")
    with fresh_database(postgres_server) as database_url:
        token = secrets.token_urlsafe(24)
        env = stack_environment(
            data_dir,
            SHIPYARD_BROKER_URL=redis_url,
            SHIPYARD_BROKER_NAMESPACE=broker_namespace,
            SHIPYARD_DATABASE_URL=database_url,
            SHIPYARD_SECRET_KEY=Fernet.generate_key().decode(),
            SHIPYARD_ADMIN_TOKEN=token,
            SHIPYARD_NOTIFY_BACKOFF_SECONDS="0.2",  # notification retries within a test's time
        )
        subprocess.run([SHIPYARD, "db", "upgrade"], env=env, check=True, capture_output=True)
        port = free_port()
        stack = Stack(url=f"http://127.0.0.1:{port}", token=token, env=env, data_dir=data_dir)
        try:
            for queue in ("build", "release", "run", "notify"):
                stack.spawn(f"worker-{queue}", "worker", queue)
            stack.spawn("beat", "beat")
            stack.spawn("router", "router")  # this run host's router: stable URLs, drain
            stack.spawn("api", "api", "--port", str(port))
            stack.wait_healthy()
            yield stack
        finally:
            stack.stop_all()


@pytest.fixture
def slow_build_repo(hello_repo: Path) -> Path:
    """examples/hello whose build takes a second, so pipelines are in flight when damaged."""
    commit_file(hello_repo, "shipyard.toml", '[build]\ncommand = "sleep 1"\n', "slow")
    return hello_repo


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator[UpFactory]:
    """Start `shipyard up` in a fresh data dir with extra settings; stopped, children and all,
    at the end whatever happened."""
    started: list[Stack] = []

    def start(**settings: str) -> Stack:
        data_dir = tmp_path / "data"
        port = free_port()
        env = stack_environment(data_dir, SHIPYARD_URL=f"http://127.0.0.1:{port}", **settings)
        stack = Stack(url=f"http://127.0.0.1:{port}", token="", env=env, data_dir=data_dir)
        started.append(stack)
        restart_up(stack)
        return stack

    yield start
    for stack in started:
        stack.stop_all()
