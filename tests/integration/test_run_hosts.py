"""Two run hosts on one machine: each environment is placed on one, its run stages go to that
host's own queue, and its processes start, switch and retire there and nowhere else.

Each run host is what docs/operations.md says one is: a `shipyard worker run` and a `shipyard
router` with a data dir, a host name (SHIPYARD_HOST_NAME) and a router port of their own, sharing
only PostgreSQL, Redis and the artifact store with the API and the build and release pools.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlmodel import col, select

from shipyard.shared import processes
from shipyard.shared.db import session_scope
from shipyard.shared.models import App, Deployment, Environment, Release
from shipyard.shared.process_record import ProcessRecord
from tests.conftest import commit_file, fresh_database
from tests.integration.stack import SHIPYARD, Stack, free_port, stack_environment
from tests.integration.traffic import router_client
from tests.integration.up import wait_for

HOSTS = ("alpha", "beta")


@dataclass
class RunHosts:
    stack: Stack  # the API, build and release pools, beat; every host's processes
    router_ports: dict[str, int]  # run host → its router's port

    def answer(self, host: str, app: str, env: str) -> str:
        """What the router of `host` answers for the environment's stable host name."""
        with router_client(f"http://{env}.{app}.localhost:{self.router_ports[host]}") as client:
            response = client.get("/")
        return f"{response.status_code} {response.text.strip()}"

    def run_host_of(self, app: str, env: str) -> str | None:
        envs = self.stack.api("GET", f"/v1/apps/{app}/environments", 200)
        return next(e["run_host"] for e in envs if e["name"] == env)

    def deployments(self, app: str, env: str) -> list[tuple[int, str, list[ProcessRecord]]]:
        """Each deployment of the environment: release version, status, process records (from
        the store: the API shows no pid)."""
        with session_scope(self.stack.env["SHIPYARD_DATABASE_URL"]) as session:
            rows = session.exec(
                select(Release.version, Deployment.status, Deployment.processes)
                .join(Release, col(Release.id) == col(Deployment.release_id))
                .join(Environment, col(Environment.id) == col(Deployment.environment_id))
                .join(App, col(App.id) == col(Environment.app_id))
                .where(App.name == app, Environment.name == env)
            ).all()
        return [(version, status, list(records)) for version, status, records in rows]


@pytest.fixture(scope="module")
def run_hosts(
    redis_url: str,
    broker_namespace: str,
    postgres_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunHosts]:
    root = tmp_path_factory.mktemp("run-hosts")
    with fresh_database(postgres_server) as database_url:
        token = secrets.token_urlsafe(24)
        shared = {
            "SHIPYARD_BROKER_URL": redis_url,
            "SHIPYARD_BROKER_NAMESPACE": f"{broker_namespace}-hosts",
            "SHIPYARD_DATABASE_URL": database_url,
            "SHIPYARD_SECRET_KEY": Fernet.generate_key().decode(),
            "SHIPYARD_ADMIN_TOKEN": token,
            "SHIPYARD_ARTIFACT_STORE": f"file://{root / 'artifacts'}",
        }
        env = stack_environment(root / "central", SHIPYARD_HOST_NAME="central", **shared)
        subprocess.run([SHIPYARD, "db", "upgrade"], env=env, check=True, capture_output=True)
        port = free_port()
        stack = Stack(url=f"http://127.0.0.1:{port}", token=token, env=env, data_dir=root)
        router_ports = {host: free_port() for host in HOSTS}
        try:
            for queue in ("build", "release", "notify"):
                stack.spawn(f"worker-{queue}", "worker", queue)
            stack.spawn("beat", "beat")
            stack.spawn("api", "api", "--port", str(port))
            for host in HOSTS:
                host_env = stack_environment(
                    root / host,
                    SHIPYARD_HOST_NAME=host,
                    SHIPYARD_ROUTER_PORT=str(router_ports[host]),
                    **shared,
                )
                stack.spawn(f"{host}-worker-run", "worker", "run", env=host_env)
                stack.spawn(f"{host}-router", "router", env=host_env)
            stack.wait_healthy()
            hosts = RunHosts(stack, router_ports)
            wait_for(
                lambda: (
                    {h["name"] for h in stack.api("GET", "/v1/hosts", 200)} >= set(HOSTS)
                    and all(h["state"] == "up" for h in stack.api("GET", "/v1/hosts", 200))
                ),
                "both run hosts' run pools to be up",
                stack,
            )
            yield hosts
        finally:
            stack.stop_all()


def test_each_environment_runs_only_on_its_run_host_across_deploys_and_a_rollback(
    run_hosts: RunHosts, hello_repo: Path
) -> None:
    stack = run_hosts.stack
    stack.api("POST", "/v1/apps", 201, json={"name": "placed", "repo": str(hello_repo)})
    for env, host in (("staging", "alpha"), ("production", "beta")):
        stack.api(
            "POST",
            "/v1/apps/placed/environments",
            201,
            json={"name": env, "run_host": host},
        )

    for round_ in range(3):
        commit_file(hello_repo, "VERSION", f"{round_}\n", f"round {round_}")
        for env in ("staging", "production"):
            assert stack.deploy("placed", env)["status"] == "succeeded"
    rollback = stack.api(
        "POST", "/v1/apps/placed/environments/staging/rollback", 202, json={"to_version": 1}
    )
    assert stack.wait_pipeline(rollback["id"])["status"] == "succeeded"

    for env, host, other in (("staging", "alpha", "beta"), ("production", "beta", "alpha")):
        assert run_hosts.run_host_of("placed", env) == host
        deployments = run_hosts.deployments("placed", env)
        # Every process of every deployment ran on its host; only the live one's still run.
        recorded = [p for _, _, records in deployments for p in records]
        assert len(deployments) >= 3 and {p["host"] for p in recorded} == {host}
        running = [
            version
            for version, _, records in deployments
            for p in records
            if processes.is_alive(p["pid"], p.get("started"))
        ]
        live = next(version for version, status, _ in deployments if status == "live")
        assert running == [live]
        current = stack.current("placed", env)
        assert [p["host"] for p in current["processes"]] == [host]
        assert run_hosts.answer(host, "placed", env) == "200 Hello from Shipyard"
        # The other host's router serves none of it (404: not placed there; 503: no server).
        assert run_hosts.answer(other, "placed", env).split()[0] in {"404", "503"}
    hosts = {h["name"]: h for h in stack.api("GET", "/v1/hosts", 200)}
    assert hosts["alpha"]["environments"] == ["placed/staging"]
    assert hosts["beta"]["environments"] == ["placed/production"]
    assert hosts["alpha"]["processes"] == hosts["beta"]["processes"] == 1
