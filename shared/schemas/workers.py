"""The worker pools the broker knows of."""

from __future__ import annotations

from pydantic import (
    BaseModel,
)


class WorkerPoolPublic(BaseModel):
    """A queue and the workers consuming it now: those whose heartbeat in the broker is fresh."""

    queue: str
    workers: list[str]  # Celery hostnames, e.g. "build@host"; empty when nothing consumes it


class RunHostPublic(BaseModel):
    """A run host: whether its run pool is up, what is placed on it and what runs there."""

    name: str  # its SHIPYARD_HOST_NAME
    state: str  # "up": a run worker consumes its queue now; "down": none does
    workers: list[str]  # the Celery hostnames of its run pool
    environments: list[str]  # "<app>/<env>" placed on it
    processes: int  # processes of live deployments recorded on it
    unpacked_bytes: int | None = None  # its apps' unpacked artifacts on disk (None: not measured)
