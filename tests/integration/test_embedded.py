"""Embedded mode: `shipyard up` alone (SQLite, file broker), driven through the CLI."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared import processes
from shared.db import session_scope
from shared.services import deployments
from tests.integration.conftest import stack_environment
from tests.integration.stack import Stack, fetch, free_port
from tests.repos import git


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Stack]:
    """`shipyard up` in a fresh data dir; the token is the one it generates at first start."""
    data_dir = tmp_path / "data"
    port = free_port()
    env = stack_environment(data_dir, SHIPYARD_URL=f"http://127.0.0.1:{port}")
    stack = Stack(url=f"http://127.0.0.1:{port}", token="", env=env, data_dir=data_dir)
    try:
        stack.spawn("up", "up", "--port", str(port))
        stack.wait_healthy()
        stack.token = (data_dir / "admin-token").read_text().strip()
        stack.client.headers["Authorization"] = f"Bearer {stack.token}"
        yield stack
    finally:
        stack.stop_all()


def test_up_deploys_through_the_cli_and_restores_live_releases_after_a_restart(
    embedded: Stack, hello_repo: Path
) -> None:
    assert embedded.run_cli("apps", "create", "hello", "--repo", str(hello_repo)).returncode == 0
    embedded.run_cli("envs", "create", "staging", "--app", "hello")
    deploy = embedded.run_cli("deploy", "--app", "hello", "--env", "staging")
    assert "Deployed release v1 to staging" in deploy.stdout
    for stage in ("build", "release", "run"):
        assert f"{stage}" in deploy.stdout
    ps = json.loads(embedded.run_cli("ps", "-a", "hello", "-e", "staging", "--json").stdout)
    url = ps["processes"][0]["url"]
    assert fetch(url) == "Hello from Shipyard"
    web = next(p for p in embedded.current("hello", "staging")["processes"])
    assert web["status"] == "running"
    assert (embedded.data_dir / "shipyard.db").is_file()
    assert any((embedded.data_dir / "broker").iterdir())

    # Stopping `up` stops the app it ran ...
    pid = int(_pid_of(embedded))
    embedded.stop("up")
    assert not processes.is_alive(pid, None)

    # ... and the next `up` starts the live release again: the SQL record is the truth.
    embedded.spawn("up", "up", "--port", embedded.url.rsplit(":", 1)[1])
    embedded.wait_healthy()
    for _ in range(300):
        current = embedded.current("hello", "staging")
        url = current["processes"][0]["url"]
        if current["processes"][0]["status"] == "running" and url:
            try:
                if fetch(url) == "Hello from Shipyard":
                    break
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    else:
        raise AssertionError("the live release was not started again")
    assert current["release"]["version"] == 1


def test_cli_deploy_exits_non_zero_with_the_error_when_the_build_fails(
    embedded: Stack, hello_repo: Path
) -> None:
    (hello_repo / "Procfile").unlink()
    git(hello_repo, "commit", "--quiet", "-am", "remove the Procfile")
    embedded.run_cli("apps", "create", "hello", "--repo", str(hello_repo))
    embedded.run_cli("envs", "create", "staging", "--app", "hello")

    result = embedded.run_cli("deploy", "--app", "hello", "--env", "staging", check=False)

    assert result.returncode == 1
    assert "no Procfile" in result.stderr + result.stdout


def test_embedded_mode_generates_its_secrets_privately(embedded: Stack) -> None:
    for name in ("admin-token", "secret.key"):
        path = embedded.data_dir / name
        assert path.is_file()
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert len(embedded.token) >= 32
    assert embedded.api("GET", "/v1/apps", 200) == []


def _pid_of(stack: Stack) -> int:
    url = f"sqlite:///{stack.data_dir / 'shipyard.db'}"
    with session_scope(url) as session:
        (live,) = deployments.live_deployments(session=session)
        return int(live.processes[0]["pid"])


def test_secrets_are_encrypted_at_rest_and_survive_a_key_rotation(
    embedded: Stack, hello_repo: Path
) -> None:
    secret = f"greeting-{secrets.token_hex(8)}"
    embedded.run_cli("apps", "create", "hello", "--repo", str(hello_repo))
    embedded.run_cli("envs", "create", "staging", "--app", "hello")
    embedded.run_cli(
        "config", "set", f"GREETING={secret}", "--secret", "-a", "hello", "-e", "staging"
    )
    embedded.run_cli("deploy", "--app", "hello", "--env", "staging")
    database = embedded.data_dir / "shipyard.db"
    assert secret.encode() not in database.read_bytes()
    old_key = (embedded.data_dir / "secret.key").read_text().strip()

    rotated = embedded.run_cli("secrets", "rotate-key", "--data-dir", str(embedded.data_dir))

    assert "re-encrypted 1 secret values" in rotated.stdout
    new_keys = (embedded.data_dir / "secret.key").read_text().strip().split(",")
    assert new_keys[1:] == [old_key] and new_keys[0] != old_key
    assert secret.encode() not in database.read_bytes()
    embedded.run_cli("config", "set", "OTHER=1", "-a", "hello", "-e", "staging")
    for _ in range(200):
        if embedded.current("hello", "staging")["release"]["version"] == 2:
            break
        time.sleep(0.1)
    rollback = embedded.run_cli("rollback", "--app", "hello", "--env", "staging", "--to", "1")
    assert "now runs release v1" in rollback.stdout
    assert fetch(embedded.web_url("hello", "staging")) == secret  # the old release still runs
