"""What the API accepts and returns. Public models never carry a secret value."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from croniter import CroniterError, croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from shared import constants

Name = Annotated[
    str,
    StringConstraints(pattern=constants.NAME_PATTERN, max_length=63),
    Field(description="Lowercase letters, digits and '-', as a DNS label."),
]


_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def strip_credentials(text: str) -> str:
    """`text` with the user:password@ part of every URL in it removed."""
    return _URL_CREDENTIALS.sub("", text)


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
    builder: Literal["local", "python", "docker", "noop"] = "local"


class AppPublic(BaseModel):
    id: uuid.UUID
    name: str
    # Credentials in a repository URL are for the build workers, never for readers of the API.
    repo: Annotated[str, AfterValidator(strip_credentials)]
    path: str
    builder: str
    created_at: datetime


def _no_parent_segments(value: str) -> str:
    if ".." in value.split("/"):
        raise ValueError("must not contain '..'")
    return value


StorageDir = Annotated[
    str,
    StringConstraints(pattern=r"^/[^\x00]*$", max_length=1024),
    AfterValidator(_no_parent_segments),
    Field(description="An absolute directory on the run host."),
]


Domain = Annotated[
    str,
    StringConstraints(
        pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$",
        max_length=253,
        to_lower=True,
    ),
    Field(description="A host name such as www.example.com."),
]


class EnvironmentCreate(_Input):
    name: Name
    runner: Literal["local", "docker", "noop"] = "local"
    health_path: Annotated[str, StringConstraints(pattern=r"^/[!-~]*$", max_length=1024)] = (
        constants.HEALTH_PATH
    )
    health_timeout: Annotated[float, Field(gt=0, le=600)] = constants.HEALTH_TIMEOUT_SECONDS
    memory_limit: Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,8}[kmg]?$")] | None = (
        None
    )
    cpu_limit: Annotated[float, Field(gt=0, le=256)] | None = None
    # An absolute host directory for the environment's persistent storage (default: the run
    # host's data dir, or a named volume with the Docker runner).
    storage_dir: StorageDir | None = None
    # Host names the environment answers to on the routers, besides <env>.<app>.localhost.
    domains: Annotated[list[Domain], Field(max_length=20)] = []
    drain_timeout: Annotated[float, Field(ge=0, le=3600)] = constants.DRAIN_TIMEOUT_SECONDS


class EnvironmentPublic(BaseModel):
    id: uuid.UUID
    name: str
    runner: str
    health_path: str
    health_timeout: float
    memory_limit: str | None
    cpu_limit: float | None
    storage_dir: str | None
    domains: list[str]
    drain_timeout: float
    formation: dict[str, int]
    url: str | None = None  # the stable URL, through the routers
    created_at: datetime


class StoragePublic(BaseModel):
    """An environment's persistent storage: how the app finds it, and where it is."""

    variable: str
    configured: str | None  # the environment's storage_dir, if set
    location: str | None  # where the live deployment's runner put it (path or Docker volume)


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


class BuildLogLinesPublic(BaseModel):
    """Lines of a build log as they were written, and where to read on from."""

    lines: list[str]
    after: str


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


class ProcessPublic(BaseModel):
    type: str
    index: int = 1  # web.1, web.2, … with a formation of several
    # running; restarting (it exited: started again after a delay); starting (restarted, not
    # yet healthy); crashed (it keeps exiting: still restarted, every 30 s)
    status: str
    url: str | None  # the process's own address; the environment's stable URL is the router's
    restarts: int = 0  # how often the run host started it again after it exited
    last_exit: int | None = None  # its last exit status (a signal shows as 128 + its number)
    restarted_at: datetime | None = None


class CurrentPublic(BaseModel):
    release: ReleasePublic
    deployment: DeploymentPublic
    processes: list[ProcessPublic]
    url: str | None = None  # the environment's stable URL, through the routers


class RollbackCreate(_Input):
    to_version: Annotated[int, Field(ge=1)] | None = None


ProcessType = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,63}$")]


class FormationPatch(_Input):
    """How many processes of each type to run (`ps:scale web=3 worker=2`); others unchanged."""

    processes: Annotated[
        dict[ProcessType, Annotated[int, Field(ge=0, le=constants.MAX_PROCESSES_PER_TYPE)]],
        Field(min_length=1, max_length=50),
    ]


class FormationPublic(BaseModel):
    formation: dict[str, int]
    pipeline_id: uuid.UUID | None = None  # the scale of the live release, if one runs


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
    str,
    StringConstraints(pattern=r"^(read|admin|metrics|deploy:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)$"),
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


# --- Triggers: incoming webhooks, scheduled promotions, outgoing notifications ---------------

RefPattern = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._/*?\[\]!-]+$"),
    Field(description="A branch or tag name, or a glob over them (`release/*`, `v*`)."),
]
TriggerSecret = Annotated[
    str,
    StringConstraints(min_length=16, max_length=256, pattern=r"^[ -~]+$"),
    Field(description="16 to 256 printable ASCII characters."),
]


class HookRule(_Input):
    """Pushes to a matching branch (or tag) deploy the commit to `environment`."""

    branch: RefPattern | None = None
    tag: RefPattern | None = None
    environment: Name

    @model_validator(mode="after")
    def _one_ref_kind(self) -> HookRule:
        if (self.branch is None) == (self.tag is None):
            raise ValueError("a rule names either a branch or a tag pattern")
        return self


class HookConfigUpdate(_Input):
    github_repository: (
        Annotated[
            str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", max_length=255)
        ]
        | None
    ) = None
    gitlab_project: (
        Annotated[
            str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$", max_length=255)
        ]
        | None
    ) = None
    rules: Annotated[list[HookRule], Field(max_length=50)] = []
    # Without one, a secret is generated (once, or again with rotate_secret) and shown once.
    secret: TriggerSecret | None = None
    rotate_secret: bool = False


class HookConfigPublic(BaseModel):
    app: str
    github_repository: str | None
    gitlab_project: str | None
    rules: list[HookRule]
    urls: dict[str, str]  # provider → path under the API's URL
    created_at: datetime
    updated_at: datetime
    secret: str | None = None  # only in the answer that generated it


class HookDeliveryPublic(BaseModel):
    provider: str
    delivery_id: str
    event: str
    outcome: str
    reason: str | None
    ref: str | None
    commit_sha: str | None
    environment: str | None
    pipeline_id: uuid.UUID | None
    received_at: datetime


class HookReceipt(BaseModel):
    """The answer to a webhook delivery."""

    delivery_id: str
    outcome: Literal["started", "duplicate", "ignored", "ping"]
    ignored: str | None = None  # why nothing was started
    pipelines: list[PipelinePublic] = []


class GenericHook(_Input):
    """The body of the generic hook, for CI systems: what to deploy where."""

    app: Name
    environment: Name
    ref: Ref


def _check_cron(value: str) -> str:
    fields = value.split()
    if not (len(fields) == 5 or (len(fields) == 1 and value.startswith("@"))):
        raise ValueError("cron must have five fields (minute hour day month weekday) or be @daily…")
    try:
        croniter(value, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except (CroniterError, TypeError) as exc:
        raise ValueError(f"cron expression is not valid: {exc}") from None
    return " ".join(fields)


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError("timezone must be an IANA name such as UTC or Europe/Paris") from None
    return value


CronExpression = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, pattern=r"^[ -~]+$"),
    AfterValidator(_check_cron),
]
TimezoneName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+/-]+$"),
    AfterValidator(_check_timezone),
]


class ScheduleGates(_Input):
    min_soak_seconds: Annotated[int, Field(ge=0, le=366 * 86400)] = 0
    require_healthy: bool = True


class ScheduleCreate(_Input):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    action: Literal["promote"] = "promote"
    source: Name = Field(alias="from")
    target: Name = Field(alias="to")
    cron: CronExpression
    timezone: TimezoneName = "UTC"
    gates: ScheduleGates = ScheduleGates()


class ScheduleRunPublic(BaseModel):
    id: uuid.UUID
    schedule_id: uuid.UUID
    due_at: datetime
    outcome: str  # fired, skipped
    reason: str | None
    pipeline_id: uuid.UUID | None
    ran_at: datetime


class SchedulePublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: uuid.UUID
    app: str
    action: str
    source: str = Field(alias="from")
    target: str = Field(alias="to")
    cron: str
    timezone: str
    gates: ScheduleGates
    next_due_at: datetime | None  # None once removed
    created_at: datetime
    deleted_at: datetime | None = None
    last_run: ScheduleRunPublic | None = None


NotificationEvent = Literal[
    "pipeline.succeeded",
    "pipeline.failed",
    "release.created",
    "rollback.finished",
    "promotion.finished",
    "scale.finished",
    "schedule.skipped",
]


def _check_receiver_url(value: str) -> str:
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, ValueError):
        raise ValueError("url must be an http(s) URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("url must be an http(s) URL with a host")
    return value


class SubscriptionCreate(_Input):
    url: Annotated[
        str,
        StringConstraints(max_length=2048, pattern=r"^https?://[!-~]+$"),
        AfterValidator(_check_receiver_url),
    ]
    events: Annotated[list[NotificationEvent], Field(min_length=1, max_length=20)]
    # Without one, a signing secret is generated and shown once.
    secret: TriggerSecret | None = None


class SubscriptionPublic(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    created_at: datetime
    deleted_at: datetime | None = None


class SubscriptionCreated(SubscriptionPublic):
    secret: str | None = None  # only when generated, shown once


class NotificationAttemptPublic(BaseModel):
    number: int
    status_code: int | None
    error: str | None
    duration_ms: float
    attempted_at: datetime


class NotificationPublic(BaseModel):
    id: uuid.UUID
    event: str
    status: str  # pending, delivered, failed
    created_at: datetime
    finished_at: datetime | None
    attempts: list[NotificationAttemptPublic]


class WorkerPoolPublic(BaseModel):
    """A queue and the workers consuming it now: those whose heartbeat in the broker is fresh."""

    queue: str
    workers: list[str]  # Celery hostnames, e.g. "build@host"; empty when nothing consumes it
