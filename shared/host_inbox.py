"""Run hosts' inboxes: what a run host is asked to do outside its run queue, as IDs on a Redis
list of the broker that a thread of its run pool's main process reads (workers.host_agent).

Two kinds of work go there: a host's share of a deployment spread over several hosts (the
coordinating host asks; workers.stages.spread), and one-off commands (`shipyard run`, from the
API). Neither may wait in the run queue: a coordinator waits in a pool slot, so a share queued
behind another coordinator would wait for it in turn; and a one-off may run for long, and must
not hold up the host's deploys.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import redis
from pydantic import BaseModel, Field, TypeAdapter

# How long a deployment's change notifications are kept for a coordinator to read.
CHANGES_KEPT_SECONDS = 600


class ShareMessage(BaseModel):
    """What the coordinating host asks a run host to do with its share of a deployment. `weigh`:
    set this host's router to the canary's share as the deployment's rollout record says now
    (the record, not the message, holds the share: messages may be handled out of order)."""

    action: Literal["start", "switch", "stop", "weigh"]
    deployment_id: uuid.UUID
    attempt: int
    replaced_id: uuid.UUID | None = None  # switch: the deployment going live superseded
    standby: bool = False  # switch: what it superseded here stands by (drained, not stopped)


class OneOffMessage(BaseModel):
    """Run the one-off command `run_id` (shared.services.one_offs) on this host."""

    action: Literal["one_off"] = "one_off"
    run_id: uuid.UUID
    stdin: bool = False  # its standard input waits on the broker (shared.one_off_stream)


HostMessage = Annotated[ShareMessage | OneOffMessage, Field(discriminator="action")]
_MESSAGE: TypeAdapter[ShareMessage | OneOffMessage] = TypeAdapter(HostMessage)


class Inbox:
    """The run hosts' inboxes: a Redis list each, on the broker."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self._redis = client
        self._namespace = namespace

    def key(self, host: str) -> str:
        return f"{self._namespace}:run-host:{host}:inbox"

    def send(self, host: str, message: ShareMessage | OneOffMessage) -> None:
        self._redis.rpush(self.key(host), message.model_dump_json())

    def receive(self, host: str, timeout: float) -> ShareMessage | OneOffMessage | None:
        item = self._redis.blpop([self.key(host)], timeout=timeout)
        if item is None:
            return None
        return _MESSAGE.validate_json(item[1])

    def _changes(self, deployment_id: uuid.UUID) -> str:
        return f"{self._namespace}:deployment:{deployment_id}:changed"

    def changed(self, deployment_id: uuid.UUID) -> None:
        """Wake whoever waits on the deployment's shares (the store says what changed)."""
        key = self._changes(deployment_id)
        with self._redis.pipeline() as pipe:
            pipe.rpush(key, "1")
            pipe.expire(key, CHANGES_KEPT_SECONDS)
            pipe.execute()

    def wait_change(self, deployment_id: uuid.UUID, timeout: float) -> None:
        """Until a share of the deployment changes, or `timeout` seconds (then look anyway)."""
        self._redis.blpop([self._changes(deployment_id)], timeout=timeout)
