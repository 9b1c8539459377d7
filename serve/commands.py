"""Command lines of Shipyard's server processes, shared by `shipyard up` and the server commands.

Every one runs with a safe import path: `python -P` puts no directory of the caller's in front of
`sys.path`, and each starts in the data directory (`server_dir`), because Celery imports the app
and its tasks with the current directory first on `sys.path`. An app repository holding its own
`api/`, `workers/` or `shipyard/` package is never imported in their place. Each also runs under
a private umask (`keep_private`): the data dir is 0700 and what is made in it 0600.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from shipyard.shared import constants
from shipyard.shared.settings import Settings
from shipyard.shared.stages import host_queue

# The Celery app every pool and the beat load; its task names are declared in shared.stages and
# shared.constants, not derived from this module path, so queued messages outlive a rename.
CELERY_APP = "shipyard.workers.app"


def _python(*args: str) -> list[str]:
    """This interpreter, without the current directory on its import path (`-P`)."""
    return [sys.executable, "-P", *args]


def worker_command(
    queue: str, concurrency: int = 1, hostname: str | None = None, *, run_host: str | None = None
) -> list[str]:
    """One pool: `celery -A shipyard.workers.app worker -Q QUEUE`. The run pool of run host
    `run_host` also consumes that host's own run queue (`run.<host>`)."""
    queues = queue
    if queue == constants.RUN_QUEUE and run_host is not None:
        queues = f"{queue},{host_queue(queue, run_host)}"
    return _python(
        "-m", "celery", "-A", CELERY_APP, "worker",
        "-Q", queues,
        "-n", hostname or f"{queue}@%h",
        "--concurrency", str(concurrency),
        "--loglevel", "INFO",
        "--without-gossip", "--without-mingle",
    )  # fmt: skip


def beat_command(settings: Settings) -> list[str]:
    """The one beat of an installation; its schedule file lives in the data dir."""
    schedule = settings.data_dir / "beat-schedule"
    return _python(
        "-m", "celery", "-A", CELERY_APP, "beat",
        "--schedule", str(schedule), "--loglevel", "INFO",
    )  # fmt: skip


def api_command(host: str, port: int) -> list[str]:
    """`shipyard api`, as a child process."""
    return _python("-m", "shipyard", "api", "--host", host, "--port", str(port))


def router_command() -> list[str]:
    """`shipyard router`, as a child process."""
    return _python("-m", "shipyard", "router")


def keep_private(settings: Settings) -> None:
    """From now on what this process and its children create is this user's alone; the data dir
    and the SQLite store of an older installation are tightened to match."""
    # Inherited across fork and exec: the pools, the broker, the router, HAProxy and the apps
    # they start all create files 0600 and directories 0700.
    os.umask(constants.PRIVATE_UMASK)
    _tighten(settings.data_dir, constants.DATA_DIR_MODE)
    store = _sqlite_file(settings.sqlalchemy_url) or settings.data_dir / constants.STORE_FILE
    for suffix in ("", "-wal", "-shm"):
        _tighten(store.with_name(store.name + suffix), constants.STORE_FILE_MODE)


def _sqlite_file(url: str) -> Path | None:
    """The SQLite store's file, wherever SHIPYARD_DATABASE_URL puts it (None: not SQLite)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).absolute()


def _tighten(path: Path, mode: int) -> None:
    """Take from `path` what `mode` does not give (group and other bits); nothing if absent."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if current & ~mode:
        path.chmod(current & mode)


def server_dir(settings: Settings) -> Path:
    """The working directory of every server process: the data dir, never the caller's."""
    settings.data_dir.mkdir(mode=constants.DATA_DIR_MODE, parents=True, exist_ok=True)
    return settings.data_dir


def exec_server(command: list[str], settings: Settings) -> None:
    """Become `command` (a pool or the beat), started from `server_dir`."""
    os.chdir(server_dir(settings))
    os.execv(command[0], command)
