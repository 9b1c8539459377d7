"""Artifacts, releases, deployments, what runs now, rollback, promotion, history and gc."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)

from shipyard.shared.process_record import ProcessStatus
from shipyard.shared.schemas.common import (
    Input,
    Name,
)
from shipyard.shared.schemas.rollouts import RolloutRequest, StoredRecord


class ArtifactPublic(BaseModel):
    id: str
    commit: str
    builder: str
    size: int
    # Where it is kept: a file on the build host, `registry/namespace/app@sha256:…`, or a tag.
    location: str
    created_at: datetime


class ReleasePublic(BaseModel):
    id: uuid.UUID
    version: int
    artifact_id: str
    config_version: int
    status: str
    cause: str
    pipeline_id: uuid.UUID | None
    source_release_id: uuid.UUID | None = None
    created_at: datetime


class DeploymentPublic(BaseModel):
    id: uuid.UUID
    release_id: uuid.UUID
    release_version: int
    status: str
    cause: str
    error: str | None
    started_at: datetime | None  # when it went live in the store
    switched_at: datetime | None = None  # when the router gave it the traffic
    ended_at: datetime | None  # when a later deployment replaced it (its drain began)
    retired_at: datetime | None = None  # when its processes were stopped, drained
    # Its pipeline's: how it was asked for (cli, dashboard, api, webhook, schedule, failover…),
    # and by whom (a token's name, a webhook's delivery, a schedule).
    trigger: str | None = None
    requested_by: str | None = None
    # Its canary or watch (None: it went live at once, unwatched): plan, state, each step.
    rollout: StoredRecord = None


class ProcessPublic(BaseModel):
    type: str
    index: int = 1  # web.1, web.2, … with a formation of several
    status: ProcessStatus
    url: str | None  # the process's own address; the environment's stable URL is the router's
    restarts: int = 0  # how often the run host started it again after it exited
    last_exit: int | None = None  # its last exit status (a signal shows as 128 + its number)
    restarted_at: datetime | None = None
    host: str | None = None  # the run host it runs on
    pid: int | None = None  # its process group's leader on that host (the local runner)
    container: str | None = None  # its container (the Docker runner)


class StandbyPublic(BaseModel):
    """A replaced release whose processes still run, out of rotation, until `until`: a rollback
    to it is only a router change."""

    release_version: int
    deployment_id: uuid.UUID
    until: datetime
    processes: list[ProcessPublic]


class CurrentPublic(BaseModel):
    release: ReleasePublic
    deployment: DeploymentPublic
    processes: list[ProcessPublic]
    url: str | None = None  # the environment's stable URL, through the routers
    standby: list[StandbyPublic] = []  # replaced releases standing by (warm rollback)


class RollbackCreate(Input):
    to_version: Annotated[int, Field(ge=1)] | None = None


class PromotionCreate(Input):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: Name = Field(alias="from")
    target: Name = Field(alias="to")
    # How it goes live in `to`, over `to`'s default plan (None: the default as it is).
    rollout: RolloutRequest | None = None


class HistoryPublic(BaseModel):
    at: datetime
    release: ReleasePublic
    deployment: DeploymentPublic


class ArtifactSide(BaseModel):
    id: str
    commit: str | None


class ConfigChange(BaseModel):
    """One config key's change; a secret's values are always <redacted>."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    key: str
    change: Literal["added", "removed", "changed"]
    secret: bool
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None


class ReleaseDiff(BaseModel):
    version: int
    against: int
    artifact_changed: bool
    artifact_from: ArtifactSide
    artifact_to: ArtifactSide
    config: list[ConfigChange]


class GarbageCollectionRequest(Input):
    keep: Annotated[int, Field(ge=1, le=10_000)] | None = None  # default: the setting


class GarbageCollection(BaseModel):
    removed_artifacts: list[str]
    expired_releases: list[str]
