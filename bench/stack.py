"""The system under test: a throw-away database, Redis namespaces, and real Shipyard processes."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from cryptography.fernet import Fernet

from shipyard.serve.commands import CELERY_APP, worker_command
from shipyard.shared import processes

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPYARD = str(Path(sys.executable).parent / "shipyard")
READY_MARK = b" ready."  # what a Celery worker logs once it consumes


@dataclass(frozen=True)
class Services:
    """Where Redis and PostgreSQL are: a Redis URL and PostgreSQL's maintenance DSN."""

    redis_url: str
    postgres_dsn: str


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def throwaway_database(postgres_dsn: str) -> Iterator[str]:
    """A new PostgreSQL database (its psycopg DSN), dropped on exit."""
    name = f"shipyard_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{postgres_dsn.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Stack:
    """Environment, processes and clients of one benchmark run."""

    root: Path
    services: Services
    dsn: str  # this run's database, for psycopg
    namespace: str  # Redis key prefix of Shipyard's queues
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    api_url: str = ""
    # Where `shipyard router` listens once a scenario starts it: a free port, never the 8080
    # default that a developer's own `shipyard up` may hold.
    router_port: int = field(default_factory=free_port)
    # Settings of this stack's own on top of the common ones, e.g. SHIPYARD_ARTIFACT_STORE.
    settings: dict[str, str] = field(default_factory=dict)
    # Whether close() also stops the apps that the deployments in the database recorded: a
    # second stack on the same database leaves them to the first.
    owns_deployments: bool = True

    def __post_init__(self) -> None:
        self.data_dir = self.root / "data"
        self.log_dir = self.root / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        # The code under test is the tree this harness belongs to, whatever is installed.
        pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), base.get("PYTHONPATH")]))
        self.env = {
            **base,
            "PYTHONPATH": pythonpath,
            "SHIPYARD_DATA_DIR": str(self.data_dir),
            "SHIPYARD_BROKER_URL": self.services.redis_url,
            "SHIPYARD_BROKER_NAMESPACE": self.namespace,
            "SHIPYARD_DATABASE_URL": self.dsn.replace("postgresql://", "postgresql+psycopg://"),
            "SHIPYARD_SECRET_KEY": Fernet.generate_key().decode(),
            "SHIPYARD_ADMIN_TOKEN": self.token,
            "SHIPYARD_ROUTER_PORT": str(self.router_port),
            # The harness's domains get uploaded certificates, never a real CA's.
            "SHIPYARD_ACME_DIRECTORY_URL": "",
            "SHIPYARD_LOG_FORMAT": "json",
            **self.settings,
        }
        self.db = psycopg.connect(self.dsn, autocommit=True)
        self.redis = redis.Redis.from_url(self.services.redis_url)
        # Idle connections are dropped after 2 s, before uvicorn closes them at 5 s: a request
        # never goes out on a connection the server is closing (a reset, once in a while).
        self.client = httpx.Client(
            timeout=60, trust_env=False, limits=httpx.Limits(keepalive_expiry=2.0)
        )

    # --- processes ----------------------------------------------------------------------------

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def spawn(
        self, name: str, command: list[str], extra_env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start `command` with the stack's environment; its output goes to logs/NAME.log."""
        with self.log_path(name).open("ab") as output:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env={**self.env, **(extra_env or {})},
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                # A harness killed before it could stop them (a smoke run past its time limit)
                # takes its servers with it.
                preexec_fn=_die_with_the_harness,
            )
        self.processes[name] = process
        return process

    def shipyard(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> None:
        """Start `shipyard ARGS` (e.g. `worker build`, `api --port P`) as process `name`."""
        self.spawn(name, [SHIPYARD, *args], extra_env)

    def raw_worker(self, queue: str, namespace: str) -> None:
        """A worker of the raw baseline: `shipyard worker`'s very command, another app module."""
        command = [
            "bench.raw_chain" if part == CELERY_APP else part
            for part in worker_command(queue, 1, f"raw-{queue}@%h")
        ]
        self.spawn(f"raw-{queue}", command, {"SHIPYARD_BROKER_NAMESPACE": namespace})

    def wait_workers(self, names: list[str], timeout: float = 60) -> None:
        """Wait until every named Celery worker logged that it is ready."""
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            for name in list(pending):
                self._check_alive(name)
                if READY_MARK in self.log_path(name).read_bytes():
                    pending.discard(name)
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not ready in {timeout:g}s: {sorted(pending)}")
            time.sleep(0.05)

    def wait_api(self, url: str, name: str, timeout: float = 60) -> None:
        """Wait until the API at `url` answers /health."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive(name)
            try:
                if self.client.get(f"{url}/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not answer /health in {timeout:g}s")

    def _check_alive(self, name: str) -> None:
        process = self.processes[name]
        if process.poll() is not None:
            tail = self.log_path(name).read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")

    def stop(self, name: str, timeout: float = 20) -> None:
        """SIGTERM process `name`, SIGKILL it if it does not end in time."""
        self.stop_many([name], timeout)

    def terminate(self, name: str) -> None:
        """SIGTERM process `name` without waiting: a Celery worker stops consuming at once."""
        self.processes[name].send_signal(signal.SIGTERM)

    def stop_many(self, names: list[str], timeout: float = 20) -> None:
        """SIGTERM the named processes at once, then wait for each (SIGKILL after `timeout`)."""
        stopping = [self.processes.pop(name) for name in names]
        for process in stopping:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in stopping:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # --- the API ------------------------------------------------------------------------------

    def api(self, method: str, path: str, expect: int | None = None, **kwargs: Any) -> Any:
        """Call the stack's API; fail loudly on an unexpected status."""
        response = self.client.request(
            method,
            f"{self.api_url}{path}",
            headers={"Authorization": f"Bearer {self.token}"},
            **kwargs,
        )
        if expect is not None and response.status_code != expect:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def start_pipeline(self, app: str, environment: str, ref: str) -> str:
        body = {"environment": environment, "ref": ref}
        return str(self.api("POST", f"/v1/apps/{app}/pipelines", 202, json=body)["id"])

    def pipeline_status(self, pipeline_id: str) -> str:
        row = self.db.execute(
            "SELECT status FROM pipeline WHERE id = %s", (pipeline_id,)
        ).fetchone()
        assert row is not None
        return str(row[0])

    def wait_pipeline(self, pipeline_id: str, timeout: float = 120, poll: float = 0.001) -> float:
        """Poll the store until the pipeline ends; the monotonic time it was seen succeeded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.pipeline_status(pipeline_id)
            if status == "succeeded":
                return time.monotonic()
            if status == "failed":
                raise RuntimeError(
                    f"pipeline {pipeline_id} failed: {self.pipeline_error(pipeline_id)}"
                )
            time.sleep(poll)
        raise RuntimeError(f"pipeline {pipeline_id} did not finish in {timeout:g}s")

    def pipeline_error(self, pipeline_id: str) -> str:
        row = self.db.execute("SELECT error FROM pipeline WHERE id = %s", (pipeline_id,)).fetchone()
        return str(row[0]) if row else "?"

    # --- teardown -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every process this stack started, and the apps its run workers started."""
        self.stop_many(list(self.processes))
        self._stop_apps()
        self.client.close()
        self.db.close()
        for pattern in (
            f"{self.namespace}:*",
            f"{self.namespace}-raw:*",
            f"bench:{self.namespace}:*",
        ):
            for key in self.redis.scan_iter(match=pattern, count=1000):
                self.redis.delete(key)
        self.redis.close()

    def _stop_apps(self) -> None:
        """App processes the local runner started: by their recorded pid, then any left below."""
        try:
            rows = (
                self.db.execute("SELECT processes FROM deployment").fetchall()
                if self.owns_deployments
                else []
            )
        except psycopg.Error:
            rows = []
        for (records,) in rows:
            for record in records or []:
                if record.get("pid"):
                    processes.terminate_group(int(record["pid"]), record.get("started"), 5)
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cwd = Path(os.readlink(proc / "cwd"))
            except OSError:
                continue
            if cwd == self.data_dir or self.data_dir in cwd.parents:
                try:
                    os.kill(int(proc.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _die_with_the_harness() -> None:
    processes.die_with_parent(signal.SIGTERM)
