"""Command lines of Shipyard's server processes, shared by `shipyard up` and the server commands.

Every one runs with a safe import path: `python -P` puts no directory of the caller's in front of
`sys.path`, and each starts in the data directory (`server_dir`), because Celery imports the app
and its tasks with the current directory first on `sys.path`. An app repository holding its own
`api/`, `workers/` or `shipyard/` package is never imported in their place.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from shipyard.shared.settings import Settings

# The Celery app every pool and the beat load; its task names are declared in shared.stages and
# shared.constants, not derived from this module path, so queued messages outlive a rename.
CELERY_APP = "shipyard.workers.app"


def _python(*args: str) -> list[str]:
    """This interpreter, without the current directory on its import path (`-P`)."""
    return [sys.executable, "-P", *args]


def worker_command(queue: str, concurrency: int = 1, hostname: str | None = None) -> list[str]:
    """One pool: `celery -A shipyard.workers.app worker -Q QUEUE`."""
    return _python(
        "-m", "celery", "-A", CELERY_APP, "worker",
        "-Q", queue,
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


def server_dir(settings: Settings) -> Path:
    """The working directory of every server process: the data dir, never the caller's."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings.data_dir


def exec_server(command: list[str], settings: Settings) -> None:
    """Become `command` (a pool or the beat), started from `server_dir`."""
    os.chdir(server_dir(settings))
    os.execv(command[0], command)
