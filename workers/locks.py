"""The release-phase lock: Redis (distributed) or a file lock (embedded), SQL guard behind both."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from filelock import FileLock, Timeout

from shared.db import session_scope
from shared.exceptions import StageFailed
from shared.services import releases
from workers.context import WorkerContext

_BUSY = "another release phase of this environment is still running"


@contextmanager
def release_phase_lock(
    context: WorkerContext, environment_id: uuid.UUID, pipeline_id: uuid.UUID, timeout: float
) -> Iterator[None]:
    """Hold the environment's release-phase lock for the block; fail the stage if it is busy."""
    name = f"release-phase-{environment_id}"
    # The lock outlives the command's own limit a little, so it never expires under it.
    hold_for = timeout + 60
    with _host_lock(context, name, hold_for, wait=timeout):
        with session_scope(context.db_url) as session:
            taken = releases.acquire_release_phase(
                session=session,
                environment_id=environment_id,
                pipeline_id=pipeline_id,
                stale_after=hold_for,
            )
        if not taken:
            raise StageFailed(_BUSY)
        try:
            yield
        finally:
            with session_scope(context.db_url) as session:
                releases.end_release_phase(
                    session=session, environment_id=environment_id, pipeline_id=pipeline_id
                )


@contextmanager
def _host_lock(context: WorkerContext, name: str, hold_for: float, wait: float) -> Iterator[None]:
    if context.redis is not None:
        lock = context.redis.lock(
            f"{context.settings.broker_namespace}:lock:{name}",
            timeout=hold_for,
            blocking_timeout=wait,
        )
        if not lock.acquire():
            raise StageFailed(_BUSY)
        try:
            yield
        finally:
            lock.release()
        return
    folder = context.settings.data_dir / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    file_lock = FileLock(folder / f"{name}.lock")
    try:
        file_lock.acquire(timeout=wait)
    except Timeout as exc:
        raise StageFailed(_BUSY) from exc
    try:
        yield
    finally:
        file_lock.release()
