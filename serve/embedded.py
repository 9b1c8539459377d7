"""Embedded mode: everything on one host under one supervising `shipyard up`.

The broker, a pool per queue, the beat and the API run as supervised children; a child that
exits is started again with backoff. Their output goes to `$DATA_DIR/logs/<name>.log`, so the
terminal shows a short summary and what the supervisor itself has to say.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import structlog

from shipyard.serve import broker
from shipyard.serve.commands import (
    api_command,
    beat_command,
    router_command,
    server_dir,
    worker_command,
)
from shipyard.serve.supervisor import ChildSpec, Supervisor, hold_exclusive
from shipyard.shared import constants, migrate, processes
from shipyard.shared.app_logs import FileSource, Follower
from shipyard.shared.db import session_scope
from shipyard.shared.exceptions import ConfigurationError
from shipyard.shared.metrics import multiprocess
from shipyard.shared.services import deployments, routes
from shipyard.shared.settings import Settings
from shipyard.workers.context import sandbox_for

log = structlog.get_logger(__name__)

# The first words `up` prints once it is ready: scripts and tests wait for them.
READY = "Shipyard is up"
BROKER = "broker"
ROUTER = "router"
API = "api"
# How often the supervisor looks at its children: a crashed pool is noticed within this.
CHECK_SECONDS = 0.2
# How long `up` waits for its API to answer before it gives up, with the API's log.
API_START_SECONDS = 120.0


@dataclass(frozen=True)
class Address:
    """Where the API listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def children(settings: Settings, address: Address) -> list[ChildSpec]:
    """The supervised processes, in start order (they stop in the reverse one), each started in
    the data dir, never in the directory `up` was run from (serve.commands says why)."""
    logs = log_dir(settings)
    cwd = server_dir(settings)
    specs = [
        ChildSpec(
            name=BROKER,
            argv=broker.server_command(settings, broker.server_binary(settings)),
            log_path=logs / "broker.log",
            ready=lambda process: broker.wait_until_ready(settings, process),
            cwd=cwd,
        )
    ]
    # The router before the run pool: a switch finds it there.
    specs.append(
        ChildSpec(name=ROUTER, argv=router_command(), log_path=logs / "router.log", cwd=cwd)
    )
    specs += [
        ChildSpec(
            name=f"worker-{queue}",
            argv=worker_command(queue, run_host=settings.host_name),
            log_path=logs / f"worker-{queue}.log",
            grace=constants.STOP_GRACE_SECONDS,
            cwd=cwd,
        )
        for queue in constants.ALL_QUEUES
    ]
    specs.append(
        ChildSpec(name="beat", argv=beat_command(settings), log_path=logs / "beat.log", cwd=cwd)
    )
    specs.append(
        ChildSpec(
            name=API,
            argv=api_command(address.host, address.port),
            log_path=logs / "api.log",
            cwd=cwd,
        )
    )
    return specs


def run(settings: Settings, address: Address, *, verbose: bool = False) -> None:
    """Start the embedded stack, keep it running until SIGINT or SIGTERM, then stop it all.

    `verbose` also prints what the children write to their logs, each line labelled."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.broker_dir.mkdir(parents=True, exist_ok=True)
    # Held while `up` lives; the kernel releases it when `up` dies, even by SIGKILL.
    lock = hold_exclusive(
        settings.data_dir / "up.lock",
        f"another `shipyard up` is running on {settings.data_dir}; stop it first",
    )
    try:
        settings.fernet_key()
        settings.api_token()
        # Alembic says "Context impl SQLiteImpl" and each step at every start: too chatty here.
        logging.getLogger("alembic").setLevel(logging.WARNING)
        migrate.upgrade(settings.sqlalchemy_url)
        supervisor = Supervisor(
            children(settings, address), state_file=settings.data_dir / "up.children.json"
        )
        supervisor.stop_leftovers(grace=constants.STOP_GRACE_SECONDS)
        # Nothing of a previous run writes there any more: its files would only pile up. The
        # children (pools, router, API) inherit the directory through the environment.
        multiprocess.wipe_metrics_dir(settings.metrics_root)
        multiprocess.use_metrics_dir(settings.host_metrics_dir)
        stopping = _stop_on_signals()
        echo = _echo_logs(supervisor, stopping) if verbose else None
        try:
            supervisor.start()  # the router then starts again what the store says is live
            _wait_for_api(supervisor, address, stopping)
            if not stopping.is_set():
                log.info("up.ready", url=address.url, data_dir=str(settings.data_dir))
                print(summary(settings, address), flush=True)
            while not stopping.wait(CHECK_SECONDS):
                supervisor.check()
        finally:
            stopping.set()
            if echo is not None:
                echo.join(timeout=2)
            log.info("up.stopping")
            # New requests stop first, then the pools and the beat, then the apps; the broker
            # goes last, so that nothing still running loses its connection to it.
            supervisor.stop([API])
            supervisor.stop([name for name in supervisor.children if name not in (API, BROKER)])
            _stop_apps(settings)
            supervisor.stop([BROKER])
            log.info("up.stopped")
    finally:
        lock.release()


def summary(settings: Settings, address: Address) -> str:
    """What a person needs once `up` is ready: the API, how the CLI finds it, where logs are."""
    return "\n".join(
        [
            f"{READY} (embedded) at {address.url}, data in {settings.data_dir}",
            f"Apps answer at http://ENV.APP.localhost:{settings.router_port} (the router)"
            + (
                f", and their domains at https://DOMAIN:"
                f"{settings.router_https_public_port or settings.router_https_port}; "
                if settings.router_https_port
                else "; "
            )
            + sandbox_for(settings).describe(),
            f"Dashboard: {address.url}/ui (sign in with the admin token, in "
            f"{settings.data_dir / 'admin-token'})",
            "In another terminal, point the CLI at it:",
            f"  export SHIPYARD_DATA_DIR={settings.data_dir}",
            f"  export SHIPYARD_URL={address.url}",
            f"Logs of the broker, API, pools and beat: {log_dir(settings)}/",
            "Ctrl-C stops everything, apps included; the next `shipyard up` starts them again.",
        ]
    )


def _echo_logs(supervisor: Supervisor, stopping: threading.Event) -> threading.Thread:
    """Print new lines of every child's log (`up --verbose`) until `stopping` is set."""
    follower = Follower()
    for name, child in supervisor.children.items():
        follower.add(name, FileSource(name, child.spec.log_path), lines=0)

    def echo() -> None:
        while not stopping.wait(CHECK_SECONDS):
            for line in follower.poll():
                print(line, end="", flush=True)

    thread = threading.Thread(target=echo, name="echo-logs", daemon=True)
    thread.start()
    return thread


def _stop_on_signals() -> threading.Event:
    stopping = threading.Event()

    def handler(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stopping


def _wait_for_api(supervisor: Supervisor, address: Address, stopping: threading.Event) -> None:
    deadline = time.monotonic() + API_START_SECONDS
    while time.monotonic() < deadline and not stopping.is_set():
        supervisor.check()
        try:
            with urllib.request.urlopen(f"{address.url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        stopping.wait(CHECK_SECONDS)
    if not stopping.is_set():
        api_log = supervisor.children[API].spec.log_path
        raise ConfigurationError(
            f"the API did not answer at {address.url} within {API_START_SECONDS:.0f} s; "
            f"see {api_log}"
        )


def _stop_apps(settings: Settings) -> None:
    """Stop the app processes `up` ran; their deployments stay live in the store for next time.
    Those of a release replaced while its switch was under way (still draining when the run
    pool was stopped) are stopped too, and recorded retired."""
    with session_scope(settings.sqlalchemy_url) as session:
        running = deployments.live_deployments(session=session, runner="local", starting=True)
        draining = deployments.unretired_deployments(session=session, runner="local")
    for deployment in [*running, *draining]:
        for record in deployment.processes:
            processes.terminate_group(
                int(record["pid"]), record.get("started"), constants.STOP_GRACE_SECONDS
            )
    with session_scope(settings.sqlalchemy_url) as session:
        for deployment in draining:
            routes.record_retired(session=session, deployment_id=deployment.id)


def log_dir(settings: Settings) -> Path:
    """Where the supervised processes write their output."""
    return settings.data_dir / "logs"
