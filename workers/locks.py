"""The release-phase lock: a Redis lock on the broker (either mode), a SQL guard behind it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.exceptions import LockError
from redis.lock import Lock

from shipyard.shared.db import session_scope
from shipyard.shared.exceptions import StageFailed
from shipyard.shared.services import releases
from shipyard.workers.context import WorkerContext

_BUSY = "another release phase of this environment is still running"


@contextmanager
def release_phase_lock(
    context: WorkerContext, environment_id: uuid.UUID, pipeline_id: uuid.UUID, timeout: float
) -> Iterator[None]:
    """Hold the environment's release-phase lock for the block; fail the stage if it is busy."""
    name = f"release-phase-{environment_id}"
    # The lock outlives the command's own limit a little, so it never expires under it.
    hold_for = timeout + 60
    with _host_lock(context, name, str(pipeline_id), hold_for, wait=timeout):
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
def _host_lock(
    context: WorkerContext, name: str, owner: str, hold_for: float, wait: float
) -> Iterator[None]:
    key = f"{context.settings.broker_namespace}:lock:{name}"
    lock = context.redis.lock(key, timeout=hold_for, blocking_timeout=wait)
    if not _take_over(context.redis, lock, key, owner) and not lock.acquire(token=owner):
        raise StageFailed(_BUSY)
    try:
        yield
    finally:
        lock.release()


def _take_over(client: redis.Redis, lock: Lock, key: str, owner: str) -> bool:
    """Take the lock over from an earlier attempt of the same pipeline whose worker died.

    The lock's token is the pipeline id, so such a lock is recognisable; `reacquire` renews it
    atomically only while the token still matches.
    """
    if client.get(key) != owner.encode():
        return False
    lock.local.token = owner.encode()
    try:
        return bool(lock.reacquire())
    except LockError:
        return False
