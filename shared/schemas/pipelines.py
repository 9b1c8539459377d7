"""Pipelines, their stages and build logs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import (
    BaseModel,
)

from shipyard.shared.schemas.common import (
    Input,
    Name,
    Ref,
)
from shipyard.shared.schemas.rollouts import RolloutRequest, StoredPlan, StoredRecord


class PipelineCreate(Input):
    environment: Name
    ref: Ref = "HEAD"
    trigger: Literal["api", "cli", "webhook", "schedule"] = "api"
    # How it goes live, over the environment's default plan (None: the default as it is).
    rollout: RolloutRequest | None = None


class StagePublic(BaseModel):
    name: str
    status: str
    attempt: int
    hostname: str | None
    started_at: datetime | None
    finished_at: datetime | None
    result_id: str | None
    error: str | None
    cache_hit: bool
    output: str | None = None


class PipelinePublic(BaseModel):
    id: uuid.UUID
    app: str
    environment: str
    kind: str
    status: str
    trigger: str
    requested_by: str | None = None
    ref: str | None
    artifact_id: str | None
    release_id: uuid.UUID | None
    deployment_id: uuid.UUID | None
    process_type: str | None = None  # a restart of that process type only
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    stages: list[StagePublic]
    # How its release goes live (None: at once, unwatched), and, once its run stage began it,
    # how that goes: its deployment's rollout record (state, share, each step's figures).
    rollout: StoredPlan = None
    rollout_record: StoredRecord = None


class BuildLogPublic(BaseModel):
    pipeline_id: uuid.UUID
    commit: str | None
    cache_hit: bool
    log: str


class BuildLogLinesPublic(BaseModel):
    """Lines of a build log as they were written, and where to read on from."""

    lines: list[str]
    after: str
