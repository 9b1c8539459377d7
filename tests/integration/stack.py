"""Shipyard's real processes for integration tests: API and worker pools, or `shipyard up`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from shipyard.shared import processes

SHIPYARD = str(Path(sys.executable).parent / "shipyard")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kill_processes_under(root: Path) -> None:
    """Kill every process whose working directory is below `root` (apps the runner started),
    with its whole process group: an app's sandbox (bubblewrap, the app itself) shares the
    group of the shell that started it in its release directory, but not that directory."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(proc / "cwd"))
        except OSError:
            continue
        if cwd == root or root in cwd.parents:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                group = os.getpgid(int(proc.name))
                if group > 1 and group != os.getpgrp():  # never the tests' own group
                    os.killpg(group, signal.SIGKILL)
                os.kill(int(proc.name), signal.SIGKILL)


def _die_with_the_tests() -> None:
    processes.die_with_parent(signal.SIGTERM)  # a clean stop: `up` then stops its apps too


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, deepest first."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:
            continue
        for child in children:
            found += [*descendants(int(child)), int(child)]
    return found


def sigkill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def up_children(data_dir: Path) -> dict[str, int]:
    """The pids of the processes `shipyard up` supervises in `data_dir`, by name."""
    path = data_dir / "up.children.json"
    if not path.exists():
        return {}
    return {name: pid for name, (pid, _started) in json.loads(path.read_text()).items()}


def kill_up_children(data_dir: Path) -> None:
    """SIGKILL whatever a `shipyard up` of `data_dir` still runs (a test that failed midway)."""
    path = data_dir / "up.children.json"
    if not path.exists():
        return
    for pid, started in json.loads(path.read_text()).values():
        if processes.is_alive(pid, started):
            sigkill([*descendants(pid), pid])


def stack_environment(data_dir: Path, **extra: str) -> dict[str, str]:
    """The parent environment without SHIPYARD_* variables, plus `extra`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    return {
        **base,
        "SHIPYARD_DATA_DIR": str(data_dir),
        "SHIPYARD_LOG_FORMAT": "json",
        # Each stack's router on a port of its own, never a developer's 8080.
        "SHIPYARD_ROUTER_PORT": str(free_port()),
        # No certificate orders from Let's Encrypt for the tests' domains (test_https: pebble).
        "SHIPYARD_ACME_DIRECTORY_URL": "",
        **extra,
    }


@dataclass
class Stack:
    """A running Shipyard: its URL, token, environment, data dir and processes' log files."""

    url: str
    token: str
    env: dict[str, str]
    data_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    client: httpx.Client = field(init=False)
    # The `shipyard` script its processes and CLI calls run (another venv's, for an installed
    # wheel), and the directory they start in (None: the tests' own).
    executable: str = SHIPYARD
    cwd: Path | None = None

    def __post_init__(self) -> None:
        self.client = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token}"} if self.token else {},
            timeout=30,
            trust_env=False,
            # Idle connections dropped before uvicorn closes them (5 s): never a reused one
            # that the server is closing.
            limits=httpx.Limits(keepalive_expiry=2.0),
        )

    def log_path(self, name: str) -> Path:
        return self.data_dir / "logs" / f"{name}.log"

    def spawn(
        self,
        name: str,
        *args: str,
        env: dict[str, str] | None = None,
        prefix: tuple[str, ...] = (),
    ) -> subprocess.Popen[bytes]:
        """Start `shipyard ARGS` with the stack's environment (or `env`: another host's), after
        `prefix` (e.g. an `nsenter` into a simulated host); output goes to logs/NAME.log."""
        self.log_path(name).parent.mkdir(parents=True, exist_ok=True)
        with self.log_path(name).open("ab") as output:
            process = subprocess.Popen(
                [*prefix, self.executable, *args],
                env=env or self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                # If the test run itself is killed (no fixture teardown then), its servers get
                # SIGTERM from the kernel and stop what they started.
                preexec_fn=_die_with_the_tests,
            )
        self.processes[name] = process
        return process

    def run_cli(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a `shipyard` CLI command against this stack (`input` its standard input)."""
        env = {**self.env, "SHIPYARD_URL": self.url, "SHIPYARD_TOKEN": self.token}
        return subprocess.run(
            [self.executable, *args],
            env=env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
        )

    def stop(self, name: str, timeout: float = 20) -> None:
        process = self.processes.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)
        self.client.close()
        kill_up_children(self.data_dir)
        kill_processes_under(self.data_dir)

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise AssertionError(
                        f"{name} exited with {process.returncode}:\n"
                        + self.log_path(name).read_text()[-3000:]
                    )
            try:
                if self.client.get("/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("the API did not become healthy in time")

    # --- API helpers ----------------------------------------------------------------------

    def api(self, method: str, path: str, expect: int | None = None, **kwargs: Any) -> Any:
        response = self.client.request(method, path, **kwargs)
        if expect is not None:
            assert response.status_code == expect, (response.status_code, response.text)
        return response.json()

    def create_app(
        self,
        name: str,
        repo: Path,
        path: str = "",
        envs: tuple[str, ...] = (),
        standby_seconds: float | None = None,
    ) -> None:
        """The app and its environments (`standby_seconds`: how long a replaced release stands
        by; None: the default)."""
        self.api("POST", "/v1/apps", 201, json={"name": name, "repo": str(repo), "path": path})
        body: dict[str, Any] = {"health_timeout": 10}
        if standby_seconds is not None:
            body["standby_seconds"] = standby_seconds
        for env in envs:
            self.api("POST", f"/v1/apps/{name}/environments", 201, json={"name": env, **body})

    def start_pipeline(self, app: str, env: str, ref: str = "HEAD") -> str:
        body = {"environment": env, "ref": ref}
        return str(self.api("POST", f"/v1/apps/{app}/pipelines", 202, json=body)["id"])

    def wait_pipeline(self, pipeline_id: str, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pipeline: dict[str, Any] = self.api("GET", f"/v1/pipelines/{pipeline_id}", 200)
            if pipeline["status"] in ("succeeded", "failed"):
                return pipeline
            time.sleep(0.1)
        raise AssertionError(f"pipeline {pipeline_id} did not finish: {pipeline}")

    def deploy(self, app: str, env: str, ref: str = "HEAD") -> dict[str, Any]:
        return self.wait_pipeline(self.start_pipeline(app, env, ref))

    def patch_config(self, app: str, env: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.api(
            "PATCH", f"/v1/apps/{app}/environments/{env}/config", 200, json=body
        )
        return result

    def current(self, app: str, env: str) -> dict[str, Any]:
        result: dict[str, Any] = self.api("GET", f"/v1/apps/{app}/environments/{env}/current", 200)
        return result

    def web_url(self, app: str, env: str) -> str:
        web = next(p for p in self.current(app, env)["processes"] if p["type"] == "web")
        return str(web["url"])


def fetch(url: str) -> str:
    """GET `url` directly (not through the API) and return the body."""
    response = httpx.get(url, timeout=5, trust_env=False)
    response.raise_for_status()
    return response.text.strip()
