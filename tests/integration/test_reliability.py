"""Damage done for real: killed workers, a flushed and a restarted Redis, a stopped PostgreSQL."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.conftest import commit_file, fresh_database
from tests.integration.services import PrivatePostgres, PrivateRedis
from tests.integration.stack import (
    SHIPYARD,
    Stack,
    descendants,
    fetch,
    free_port,
    stack_environment,
)

# Fast failure detection, so that recovery is seen within seconds (see docs/reliability.md).
FAST = {
    "SHIPYARD_HEARTBEAT_SECONDS": "0.3",
    "SHIPYARD_STALE_AFTER_SECONDS": "2",
    "SHIPYARD_RECONCILE_SECONDS": "0.5",
    "SHIPYARD_QUEUED_REDELIVER_SECONDS": "3",
}
SLOW_APP = """import os, time
time.sleep(2)
exec(open("server.py").read())
"""

StackFactory = Callable[..., Stack]


@pytest.fixture
def make_stack(
    tmp_path: Path, postgres_server: str, broker_namespace: str
) -> Iterator[StackFactory]:
    """Start API + worker pools + beat with the given broker and database (defaults: shared)."""
    started: list[Stack] = []

    def start(broker_url: str, database_url: str) -> Stack:
        data_dir = tmp_path / f"stack-{len(started)}"
        token = secrets.token_urlsafe(24)
        env = stack_environment(
            data_dir,
            SHIPYARD_BROKER_URL=broker_url,
            SHIPYARD_BROKER_NAMESPACE=f"{broker_namespace}-{uuid.uuid4().hex[:6]}",
            SHIPYARD_DATABASE_URL=database_url,
            SHIPYARD_SECRET_KEY=Fernet.generate_key().decode(),
            SHIPYARD_ADMIN_TOKEN=token,
            **FAST,
        )
        subprocess.run([SHIPYARD, "db", "upgrade"], env=env, check=True, capture_output=True)
        port = free_port()
        stack = Stack(url=f"http://127.0.0.1:{port}", token=token, env=env, data_dir=data_dir)
        started.append(stack)
        for queue in ("build", "release", "run", "notify"):  # notify runs the reconciler
            stack.spawn(f"worker-{queue}", "worker", queue)
        stack.spawn("beat", "beat")
        stack.spawn("api", "api", "--port", str(port))
        stack.wait_healthy()
        return stack

    yield start
    for stack in started:
        stack.stop_all()


@pytest.fixture
def slow_repo(hello_repo: Path) -> Path:
    """examples/hello whose build, release phase and start-up each take about two seconds."""
    (hello_repo / "server.py").write_text((hello_repo / "app.py").read_text())
    commit_file(hello_repo, "app.py", SLOW_APP, "slow start")
    commit_file(hello_repo, "shipyard.toml", '[build]\ncommand = "sleep 2"\n', "slow build")
    commit_file(hello_repo, "Procfile", "web: python3 app.py\nrelease: sleep 2\n", "slow phase")
    return hello_repo


def _kill_worker(stack: Stack, queue: str) -> None:
    """SIGKILL a pool's worker: its main process and every child, as a host crash would."""
    process = stack.processes.pop(f"worker-{queue}")
    for pid in [*descendants(process.pid), process.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def _wait_stage(stack: Stack, pipeline_id: str, stage: str, status: str) -> None:
    for _ in range(600):
        pipeline = stack.api("GET", f"/v1/pipelines/{pipeline_id}", 200)
        if next(s for s in pipeline["stages"] if s["name"] == stage)["status"] == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"{stage} never became {status}")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("queue", ["build", "release", "run"])
def test_a_worker_killed_mid_stage_is_replaced_and_the_pipeline_completes_once(
    make_stack: StackFactory, redis_url: str, postgres_server: str, slow_repo: Path, queue: str
) -> None:
    with fresh_database(postgres_server) as database_url:
        stack = make_stack(redis_url, database_url)
        stack.create_app("crash", slow_repo, envs=("staging",))
        pipeline_id = stack.start_pipeline("crash", "staging")
        _wait_stage(stack, pipeline_id, queue, "running")
        time.sleep(0.5)  # inside the stage's slow part

        _kill_worker(stack, queue)
        stack.spawn(f"worker-{queue}", "worker", queue)
        done = stack.wait_pipeline(pipeline_id, timeout=120)

        assert done["status"] == "succeeded", done
        attempts = {s["name"]: s["attempt"] for s in done["stages"]}
        assert attempts[queue] == 2, attempts
        assert len(stack.api("GET", "/v1/apps/crash/artifacts", 200)) == 1
        releases = stack.api("GET", "/v1/apps/crash/environments/staging/releases", 200)
        assert [r["version"] for r in releases] == [1]
        deployments = stack.api("GET", "/v1/apps/crash/environments/staging/deployments", 200)
        assert [d["status"] for d in deployments] == ["live"]
        assert fetch(stack.web_url("crash", "staging")) == "Hello from Shipyard"
        assert _apps_running(stack) == 1  # a killed attempt's app was stopped, not orphaned
        stack.stop_all()


def _apps_running(stack: Stack) -> int:
    """App processes of the stack: process groups (an app and the shell that started it are
    one) working below its run directory."""
    run_dir = stack.data_dir / "run"
    groups = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if run_dir in Path(os.readlink(proc / "cwd")).parents:
                    groups.add(os.getpgid(int(proc.name)))
            except OSError:
                continue
    return len(groups)


def _finish_all(stack: Stack, ids: list[str]) -> list[dict[str, Any]]:
    return [stack.wait_pipeline(pipeline_id, timeout=120) for pipeline_id in ids]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A started redis-server of this test's own, to flush or restart at will."""
    broker = PrivateRedis(tmp_path / "redis")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.mark.timeout(300)
def test_pipelines_survive_a_flushed_redis(
    make_stack: StackFactory,
    postgres_server: str,
    private_redis: PrivateRedis,
    slow_build_repo: Path,
) -> None:
    with fresh_database(postgres_server) as database_url:
        stack = make_stack(private_redis.url, database_url)
        for env in ("a", "b", "c"):
            stack.create_app(f"flush-{env}", slow_build_repo, envs=("staging",))
        ids = [stack.start_pipeline(f"flush-{env}", "staging") for env in ("a", "b", "c")]
        time.sleep(0.5)

        private_redis.flush()  # every queued and unacked message is gone

        done = _finish_all(stack, ids)
        assert [p["status"] for p in done] == ["succeeded"] * 3, done
        stack.stop_all()


@pytest.mark.timeout(300)
def test_workers_resume_consuming_after_redis_restarts(
    make_stack: StackFactory,
    postgres_server: str,
    private_redis: PrivateRedis,
    slow_build_repo: Path,
) -> None:
    with fresh_database(postgres_server) as database_url:
        stack = make_stack(private_redis.url, database_url)
        stack.create_app("restart", slow_build_repo, envs=("staging", "qa"))
        before = stack.start_pipeline("restart", "staging")
        time.sleep(0.5)

        private_redis.stop()
        down = stack.client.post(
            "/v1/apps/restart/pipelines", json={"environment": "qa"}, timeout=30
        )
        private_redis.start()

        assert down.status_code == 503
        assert "broker" in down.json()["detail"]
        assert stack.wait_pipeline(before, timeout=120)["status"] == "succeeded"
        after = stack.deploy("restart", "qa")  # consumed by the same, reconnected workers
        assert after["status"] == "succeeded", after
        for queue in ("build", "release", "run"):
            assert stack.processes[f"worker-{queue}"].poll() is None
        stack.stop_all()


@pytest.mark.timeout(300)
def test_api_answers_503_while_postgres_is_down_and_workers_reconnect(
    make_stack: StackFactory, redis_url: str, tmp_path: Path, hello_repo: Path
) -> None:
    database = PrivatePostgres()
    database.init()
    database.start()
    try:
        stack = make_stack(redis_url, database.url)
        stack.create_app("outage", hello_repo, envs=("staging",))
        assert stack.deploy("outage", "staging")["status"] == "succeeded"

        database.stop()
        responses = [
            stack.client.get("/v1/apps"),
            stack.client.post("/v1/apps/outage/pipelines", json={"environment": "staging"}),
            httpx.get(f"{stack.url}/health", trust_env=False, timeout=10),
        ]
        database.start()

        for response in responses:
            assert response.status_code == 503, response.text
            assert response.json() == {"detail": "the database is unavailable; try again shortly"}
        assert stack.api("GET", "/v1/apps", 200)[0]["name"] == "outage"
        commit_file(hello_repo, "VERSION", "2\n")
        again = stack.deploy("outage", "staging")
        assert again["status"] == "succeeded", again
        stack.stop_all()
    finally:
        database.stop()
        database.remove()
