"""A one-off command's output while it runs, and its cancellation: keys on the broker.

The output goes, line by line (secrets redacted), to a Redis stream that `shipyard run` reads
as it goes (the same kind of stream as a build's live log, shared.build_stream); the stored
record (SQL) keeps its tail once it ended. A cancel (the CLI interrupted, `POST …/cancel`) is a
key the run host looks at while the command runs."""

from __future__ import annotations

import uuid

import redis

CANCEL_KEPT_SECONDS = 24 * 3600


def output_key(namespace: str, run_id: uuid.UUID) -> str:
    return f"{namespace}:runlog:{run_id}"


def _cancel_key(namespace: str, run_id: uuid.UUID) -> str:
    return f"{namespace}:run:{run_id}:cancel"


def request_cancel(client: redis.Redis, namespace: str, run_id: uuid.UUID) -> None:
    client.set(_cancel_key(namespace, run_id), "1", ex=CANCEL_KEPT_SECONDS)


def cancel_requested(client: redis.Redis, namespace: str, run_id: uuid.UUID) -> bool:
    return bool(client.exists(_cancel_key(namespace, run_id)))
