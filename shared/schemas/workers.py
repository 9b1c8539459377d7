"""The worker pools the broker knows of."""

from __future__ import annotations

from pydantic import (
    BaseModel,
)


class WorkerPoolPublic(BaseModel):
    """A queue and the workers consuming it now: those whose heartbeat in the broker is fresh."""

    queue: str
    workers: list[str]  # Celery hostnames, e.g. "build@host"; empty when nothing consumes it
