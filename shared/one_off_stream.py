"""A one-off command's output while it runs, and its cancellation: keys on the broker.

The output goes, line by line (secrets redacted), to a Redis stream that `shipyard run` reads
as it goes (the same kind of stream as a build's live log, shared.build_stream); the stored
record (SQL) keeps its tail once it ended. A cancel (the CLI interrupted, `POST …/cancel`) is a
key the run host looks at while the command runs. Its standard input (`--stdin`) waits on the
broker for its host, which takes it once: it is never part of the record."""

from __future__ import annotations

import uuid

import redis

CANCEL_KEPT_SECONDS = 24 * 3600


def output_key(namespace: str, run_id: uuid.UUID) -> str:
    return f"{namespace}:runlog:{run_id}"


def _cancel_key(namespace: str, run_id: uuid.UUID) -> str:
    return f"{namespace}:run:{run_id}:cancel"


def _input_key(namespace: str, run_id: uuid.UUID) -> str:
    return f"{namespace}:run:{run_id}:stdin"


# A run's standard input waits this long at most for its host (the CLI cancels a run its host
# has not started within a minute; the input goes with it).
INPUT_KEPT_SECONDS = 3600


def put_input(client: redis.Redis, namespace: str, run_id: uuid.UUID, data: bytes) -> None:
    """The run's standard input, kept until its host takes it (an hour at most)."""
    client.set(_input_key(namespace, run_id), data, ex=INPUT_KEPT_SECONDS)


def drop_input(client: redis.Redis, namespace: str, run_id: uuid.UUID) -> None:
    """The run's standard input, removed: it will never run."""
    client.delete(_input_key(namespace, run_id))


def take_input(client: redis.Redis, namespace: str, run_id: uuid.UUID) -> bytes | None:
    """The run's standard input, removed from the broker; None if it is not there (lost)."""
    data = client.getdel(_input_key(namespace, run_id))
    if data is None:
        return None
    return data if isinstance(data, bytes) else data.encode()


def request_cancel(client: redis.Redis, namespace: str, run_id: uuid.UUID) -> None:
    client.set(_cancel_key(namespace, run_id), "1", ex=CANCEL_KEPT_SECONDS)


def cancel_requested(client: redis.Redis, namespace: str, run_id: uuid.UUID) -> bool:
    return bool(client.exists(_cancel_key(namespace, run_id)))
