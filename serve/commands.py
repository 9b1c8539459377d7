"""Command lines of Shipyard's server processes, shared by `shipyard up` and the server commands."""

from __future__ import annotations

import sys

from shared.settings import Settings


def worker_command(queue: str, concurrency: int = 1, hostname: str | None = None) -> list[str]:
    """One pool: `celery -A workers.app worker -Q QUEUE`."""
    return [
        sys.executable, "-m", "celery", "-A", "workers.app", "worker",
        "-Q", queue,
        "-n", hostname or f"{queue}@%h",
        "--concurrency", str(concurrency),
        "--loglevel", "INFO",
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip


def beat_command(settings: Settings) -> list[str]:
    """The one beat of an installation; its schedule file lives in the data dir."""
    schedule = settings.data_dir / "beat-schedule"
    return [
        sys.executable, "-m", "celery", "-A", "workers.app", "beat",
        "--schedule", str(schedule), "--loglevel", "INFO",
    ]  # fmt: skip


def api_command(host: str, port: int) -> list[str]:
    """`shipyard api`, as a child process."""
    return [sys.executable, "-m", "cli", "api", "--host", host, "--port", str(port)]


def router_command() -> list[str]:
    """`shipyard router`, as a child process."""
    return [sys.executable, "-m", "cli", "router"]
