"""What the API accepts and returns. Public models never carry a secret value."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from shared import constants

Name = Annotated[
    str,
    StringConstraints(pattern=constants.NAME_PATTERN, max_length=63),
    Field(description="Lowercase letters, digits and '-', as a DNS label."),
]


def _check_repo(value: str) -> str:
    if value.startswith("-") or any(ch in value for ch in "\n\r\0"):
        raise ValueError("repo must be a path or URL and may not start with '-'")
    return value


def _check_subpath(value: str) -> str:
    if not value:
        return value
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or value.startswith("-"):
        raise ValueError("path must be a relative directory inside the repository, without '..'")
    if not re.fullmatch(r"[A-Za-z0-9._/-]+", value):
        raise ValueError("path may contain only letters, digits, '.', '_', '-' and '/'")
    return str(path)


def _check_ref(value: str) -> str:
    if value.startswith("-") or not re.fullmatch(r"[A-Za-z0-9._/@^~{}-]+", value):
        raise ValueError("ref must be a branch, tag or commit SHA")
    return value


Ref = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(_check_ref)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AppCreate(_Input):
    name: Name
    repo: Annotated[
        str, StringConstraints(min_length=1, max_length=2048), AfterValidator(_check_repo)
    ]
    path: Annotated[str, StringConstraints(max_length=1024), AfterValidator(_check_subpath)] = ""
    builder: Literal["local", "docker", "noop"] = "local"


class AppPublic(BaseModel):
    id: uuid.UUID
    name: str
    repo: str
    path: str
    builder: str
    created_at: datetime


class EnvironmentCreate(_Input):
    name: Name
    runner: Literal["local", "docker", "noop"] = "local"
    health_path: Annotated[str, StringConstraints(pattern=r"^/[!-~]*$", max_length=1024)] = "/"
    health_timeout: Annotated[float, Field(gt=0, le=600)] = constants.HEALTH_TIMEOUT_SECONDS
    memory_limit: Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,8}[kmg]?$")] | None = (
        None
    )
    cpu_limit: Annotated[float, Field(gt=0, le=256)] | None = None


class EnvironmentPublic(BaseModel):
    id: uuid.UUID
    name: str
    runner: str
    health_path: str
    health_timeout: float
    memory_limit: str | None
    cpu_limit: float | None
    created_at: datetime


ConfigKey = Annotated[str, StringConstraints(pattern=constants.CONFIG_KEY_PATTERN)]


class ConfigPatch(_Input):
    vars: dict[ConfigKey, Annotated[str, StringConstraints(max_length=65536)] | None] = {}
    secrets: list[ConfigKey] = []
    deploy: bool = True


class ConfigPublic(BaseModel):
    version: int
    vars: dict[str, str]
    secrets: list[str]
    pipeline_id: uuid.UUID | None = None


class PipelineCreate(_Input):
    environment: Name
    ref: Ref = "HEAD"
    trigger: Literal["api", "cli", "webhook", "schedule"] = "api"


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
    ref: str | None
    artifact_id: str | None
    release_id: uuid.UUID | None
    deployment_id: uuid.UUID | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    stages: list[StagePublic]


class BuildLogPublic(BaseModel):
    pipeline_id: uuid.UUID
    commit: str | None
    cache_hit: bool
    log: str


class ArtifactPublic(BaseModel):
    id: str
    commit: str
    builder: str
    size: int
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
    started_at: datetime | None
    ended_at: datetime | None


class ProcessPublic(BaseModel):
    type: str
    status: str
    url: str | None


class CurrentPublic(BaseModel):
    release: ReleasePublic
    deployment: DeploymentPublic
    processes: list[ProcessPublic]


class RollbackCreate(_Input):
    to_version: Annotated[int, Field(ge=1)] | None = None


class PromotionCreate(_Input):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: Name = Field(alias="from")
    target: Name = Field(alias="to")


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


class GarbageCollectionRequest(_Input):
    keep: Annotated[int, Field(ge=1, le=10_000)] | None = None  # default: the setting


class GarbageCollection(BaseModel):
    removed_artifacts: list[str]
    expired_releases: list[str]


Scope = Annotated[
    str, StringConstraints(pattern=r"^(read|admin|deploy:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)$")
]


class TokenCreate(_Input):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[ -~]+$")]
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=50)]


class TokenPublic(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenPublic):
    token: str  # shown once, never stored
