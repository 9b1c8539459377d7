"""Server commands: `up` (embedded), `api` and `worker` (distributed), `db upgrade`."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shipyard.cli.client import CliError
from shipyard.shared import constants
from shipyard.shared.exceptions import ConfigurationError, ShipyardError

if TYPE_CHECKING:
    from shipyard.shared.settings import Settings

# Each command imports what it runs (the servers' settings, SQLAlchemy, Celery, uvicorn, the
# supervisor) when it runs: the CLI's client commands, which share this entry point, start
# without them (tests/cli/test_imports.py).

db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)
secrets_cli = typer.Typer(help="Keys for secret config.", no_args_is_help=True)

DataDirOpt = Annotated[
    Path | None, typer.Option(help="Where embedded mode keeps its data (SHIPYARD_DATA_DIR).")
]


def _settings(data_dir: Path | None = None) -> Settings:
    """A server command's settings; what it and its children create from here on is private."""
    from shipyard.serve.commands import keep_private
    from shipyard.shared.settings import Settings

    if data_dir is not None:
        # Child processes (the workers) read the same variable.
        os.environ["SHIPYARD_DATA_DIR"] = str(data_dir.expanduser().absolute())
    try:
        settings = Settings()
    except ValueError as exc:
        raise CliError(f"invalid settings: {exc}") from exc
    keep_private(settings)
    return settings


def check_services(settings: Settings) -> None:
    """Refuse to start, with a clear message, when the database or broker cannot be reached."""
    from sqlalchemy import text

    from shipyard.shared.broker import make_celery
    from shipyard.shared.db import get_engine

    try:
        with get_engine(settings.sqlalchemy_url).connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        raise CliError(f"cannot reach the database ({type(exc).__name__}): {exc}") from exc
    celery = make_celery(settings, "shipyard-check")
    try:
        with celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=5)
    except Exception as exc:
        raise CliError(f"cannot reach the broker ({type(exc).__name__}): {exc}") from exc
    finally:
        celery.close()


@db_cli.command("upgrade")
def db_upgrade(data_dir: DataDirOpt = None) -> None:
    """Apply the schema migrations."""
    from shipyard.shared import migrate

    settings = _settings(data_dir)
    migrate.upgrade(settings.sqlalchemy_url)
    typer.echo("database is up to date")


@secrets_cli.command("generate-key")
def generate_key() -> None:
    """Print a new key for SHIPYARD_SECRET_KEY."""
    from cryptography.fernet import Fernet

    print(Fernet.generate_key().decode())


@secrets_cli.command("rotate-key")
def rotate_key(data_dir: DataDirOpt = None) -> None:
    """Re-encrypt every secret under the newest key (embedded mode: a new key is made first).

    Distributed mode: set SHIPYARD_SECRET_KEY=NEW,OLD on every host and restart them, run this,
    then drop OLD once nothing uses it. Embedded mode keeps OLD as a second key in secret.key.
    """
    from cryptography.fernet import Fernet

    from shipyard.shared.db import session_scope
    from shipyard.shared.services.secrets import rotate_secrets

    settings = _settings(data_dir)
    if settings.mode == "embedded":
        old = settings.fernet_key().decode()
        _write_secret_file(settings.secret_key_file, f"{Fernet.generate_key().decode()},{old}")
        settings = _settings(data_dir)
    elif len(settings.fernet_key().split(b",")) < 2:
        raise CliError(
            "put the new key first: SHIPYARD_SECRET_KEY=NEW,OLD on every host, restart them, "
            "then run rotate-key again"
        )
    with session_scope(settings.sqlalchemy_url) as session:
        count = rotate_secrets(session=session, box=settings.secret_box())
    typer.echo(f"re-encrypted {count} secret values under the newest key")


def _write_secret_file(path: Path, value: str) -> None:
    tmp = path.with_suffix(".rotating")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    os.replace(tmp, path)


def beat() -> None:
    """Start the beat that runs the reconciler (and schedules). Run exactly one per installation."""
    from shipyard.serve.commands import beat_command, exec_server

    settings = _settings()
    check_services(settings)
    command = beat_command(settings)
    exec_server(command, settings)


def _check_port_free(host: str, port: int) -> None:
    """Refuse now, clearly, a metrics port the worker could not bind once it is running."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise CliError(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from exc


def worker(
    queue: Annotated[str, typer.Argument(help="build, release, run or notify.")],
    concurrency: Annotated[int, typer.Option(min=1, help="Processes in this pool.")] = 1,
    hostname: Annotated[str | None, typer.Option(help="Worker name (default QUEUE@host).")] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Serve this host's worker metrics (Prometheus) on this port, for hosts "
            "without the API; one pool per host is enough (docs/operations.md).",
        ),
    ] = None,
    metrics_host: Annotated[
        str | None, typer.Option(help="Address the metrics port binds (default 127.0.0.1).")
    ] = None,
) -> None:
    """Start one worker pool (`celery -A shipyard.workers.app worker -Q QUEUE`) on any host."""
    from shipyard.serve.commands import exec_server, worker_command

    queues = constants.ALL_QUEUES
    if queue not in queues:
        raise CliError(f"unknown queue {queue!r}; choose one of {', '.join(queues)}")
    settings = _settings()
    try:
        settings.fernet_key()
    except ConfigurationError as exc:
        raise CliError(exc.message) from exc
    check_services(settings)
    # Read by the worker's main process (shipyard.workers.app), which serves them once it is ready.
    if metrics_port is not None:
        _check_port_free(metrics_host or settings.metrics_host, metrics_port)
        os.environ["SHIPYARD_METRICS_PORT"] = str(metrics_port)
    if metrics_host is not None:
        os.environ["SHIPYARD_METRICS_HOST"] = metrics_host
    command = worker_command(queue, concurrency, hostname, run_host=settings.host_name)
    exec_server(command, settings)


def router() -> None:
    """This run host's router (HAProxy): stable URLs per environment, switches without a
    dropped request. Run one per run host, beside its run pool; `shipyard up` runs its own."""
    from shipyard.shared.logging import configure_logging
    from shipyard.shared.metrics import multiprocess

    settings = _settings()
    # Before the router's code imports prometheus-client: app restarts and drains are counted
    # in this host's metrics dir.
    multiprocess.use_metrics_dir(settings.host_metrics_dir)
    from shipyard.serve import router_agent  # the router agent (and the workers it uses) only here

    configure_logging(json=settings.log_format == "json", level=settings.log_level)
    try:
        check_services(settings)
        router_agent.run(settings)
    except ShipyardError as exc:
        raise CliError(exc.message) from exc


def api(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="The TLS proxy's address(es), whose X-Forwarded-Proto/For are trusted "
            "(then the dashboard's cookie is Secure behind it); default 127.0.0.1."
        ),
    ] = None,
) -> None:
    """Serve the API alone (distributed mode); stage work goes to the worker pools."""
    from shipyard.shared.logging import configure_logging

    settings = _settings()
    try:
        settings.api_token()
        settings.fernet_key()
    except ConfigurationError as exc:
        raise CliError(exc.message) from exc
    check_services(settings)
    configure_logging(json=settings.log_format == "json", level=settings.log_level)
    serve_asgi(
        "shipyard.api.main:create_app",
        host=host,
        port=port,
        workers=workers,
        forwarded_allow_ips=forwarded_allow_ips,
    )


def serve_asgi(
    factory: str, *, host: str, port: int, workers: int, forwarded_allow_ips: str | None
) -> None:
    """Serve the app `factory` ("module:function") with the API's uvicorn settings; the
    benchmark's floor routes (bench/floors.py) are served through here too."""
    import uvicorn

    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        timeout_graceful_shutdown=constants.API_SHUTDOWN_GRACE_SECONDS,
        forwarded_allow_ips=forwarded_allow_ips,
    )


def up(
    port: Annotated[int, typer.Option(help="Port for the API.")] = 8000,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    data_dir: DataDirOpt = None,
    router_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Port the router serves the apps' stable URLs on (SHIPYARD_ROUTER_PORT; "
            "default 8080).",
        ),
    ] = None,
    router_https_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Port the router serves HTTPS on, for environments' domains "
            "(SHIPYARD_ROUTER_HTTPS_PORT; default: no HTTPS).",
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Also print the API's, pools' and broker's logs.")
    ] = False,
) -> None:
    """Embedded mode: a broker, the API, a pool per queue and the beat, supervised, on SQLite."""
    from shipyard.shared.logging import configure_logging

    if router_port is not None:  # read by this process's settings and by its children's
        os.environ["SHIPYARD_ROUTER_PORT"] = str(router_port)
    if router_https_port is not None:
        os.environ["SHIPYARD_ROUTER_HTTPS_PORT"] = str(router_https_port)
    settings = _settings(data_dir)
    if settings.mode != "embedded":
        raise CliError(
            "`shipyard up` runs embedded mode; unset SHIPYARD_BROKER_URL, "
            "or run `shipyard api` and `shipyard worker …` for distributed mode"
        )
    configure_logging(json=settings.log_format == "json", level=settings.log_level)
    from shipyard.serve import embedded  # the supervisor's code only here

    try:
        embedded.run(settings, embedded.Address(host=host, port=port), verbose=verbose)
    except ConfigurationError as exc:
        raise CliError(exc.message) from exc
