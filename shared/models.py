"""The SQL store: what was built, released and run, and each stage's result."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from shipyard.shared import constants
from shipyard.shared.process_record import ProcessRecord
from shipyard.shared.stages import PipelineKind


def utcnow() -> datetime:
    """Now, timezone-aware in UTC: every timestamp in the store is UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _timestamp() -> Any:
    return Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


def _maybe_timestamp(*, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=True, index=index))


class PipelineStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class StageStatus(StrEnum):
    PENDING = "pending"  # not yet reached
    QUEUED = "queued"  # its message is published
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # an earlier stage failed
    WAITING = "waiting"  # an older pipeline of the environment is still ahead of it


class ReleaseStatus(StrEnum):
    PENDING = "pending"  # created, not yet run
    SUCCEEDED = "succeeded"  # went live at least once
    FAILED = "failed"  # its first run (or release phase) failed
    EXPIRED = "expired"  # its artifact was garbage-collected: it can no longer run


class DeploymentStatus(StrEnum):
    STARTING = "starting"
    LIVE = "live"
    FAILED = "failed"
    SUPERSEDED = "superseded"
    STOPPED = "stopped"


# The kinds of pipeline and their stages are declared in shared.stages.


class App(SQLModel, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=63)
    repo: str = Field(max_length=2048)
    path: str = Field(default="", max_length=1024)
    builder: str = Field(default="local", max_length=32)
    created_at: datetime = _timestamp()
    # `apps destroy`: when. Its records stay (what ran, when, who asked), under a name no one
    # can give (shared.services.apps.tombstone), so that its own name is free again at once.
    destroyed_at: datetime | None = _maybe_timestamp()


class Environment(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("app_id", "name"),
        Index("uq_environment_route_slot", "route_slot", unique=True),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    app_id: uuid.UUID = Field(foreign_key="app.id", index=True)
    name: str = Field(max_length=63)
    runner: str = Field(default="local", max_length=32)
    health_path: str = Field(default=constants.HEALTH_PATH, max_length=1024)
    health_timeout: float = constants.HEALTH_TIMEOUT_SECONDS
    memory_limit: str | None = Field(default=None, max_length=16)  # e.g. "256m" (Docker runner)
    cpu_limit: float | None = None  # CPUs, e.g. 0.5 (Docker runner)
    # Persistent storage: a host directory that outlives releases; None = the runner's default
    # (a directory in the run host's data dir, a named volume for Docker).
    storage_dir: str | None = Field(default=None, max_length=1024)
    # Serving: the environment's backend on every run host's router (its slot), the host names
    # it answers besides `<env>.<app>.localhost`, and how long an old release may drain.
    route_slot: int | None = None
    domains: list[str] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False, server_default=text("'[]'")),
    )
    drain_timeout: float = Field(
        default=constants.DRAIN_TIMEOUT_SECONDS, sa_column_kwargs={"server_default": text("30")}
    )
    # Process type → how many run (`ps:scale web=3`); a type not listed runs once.
    formation: dict[str, int] = Field(
        default_factory=dict,
        sa_column=Column(JSON, nullable=False, server_default=text("'{}'")),
    )
    # The run host the environment's processes run on (SHIPYARD_HOST_NAME): its run stages go
    # to that host's own queue. None until its first run stage places it where it ran.
    run_host: str | None = Field(default=None, max_length=64)
    # The other run hosts it is spread over (`envs create --hosts a,b`): the formation is
    # shared out over [run_host, *extra_hosts]; run_host coordinates (workers.stages.spread).
    extra_hosts: list[str] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False, server_default=text("'[]'")),
    )
    # The SQL guard behind the release-phase lock: which pipeline holds it, since when.
    release_phase_holder: uuid.UUID | None = None
    release_phase_since: datetime | None = _maybe_timestamp()
    # HTTPS of its domains (shared/services/certificates.py): plain HTTP is redirected to HTTPS
    # for a domain with a certificate (never the ACME challenge path), and HSTS is sent if asked.
    https_redirect: bool = Field(default=True, sa_column_kwargs={"server_default": text("true")})
    hsts: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    # How its deploys go live by default (shared.schemas.rollouts.RolloutPlan): at once, or by
    # canary steps, then watched. None: at once, unwatched.
    rollout: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # After a switch, how long the replaced release's processes stay running out of rotation, so
    # that a rollback to it (or a watch's) is only a router change (0: stopped once drained).
    standby_seconds: float = Field(
        default=constants.STANDBY_SECONDS,
        sa_column_kwargs={"server_default": text(str(int(constants.STANDBY_SECONDS)))},
    )
    created_at: datetime = _timestamp()


class ConfigVersion(SQLModel, table=True):
    """An immutable snapshot of an environment's vars; secret values are Fernet tokens."""

    __tablename__ = "config_version"
    __table_args__ = (UniqueConstraint("environment_id", "version"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    environment_id: uuid.UUID = Field(foreign_key="environment.id", index=True)
    version: int
    plain_vars: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    secret_vars: dict[str, str] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    created_at: datetime = _timestamp()


class Pipeline(SQLModel, table=True):
    __table_args__ = (Index("ix_pipeline_environment_status", "environment_id", "status"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    app_id: uuid.UUID = Field(foreign_key="app.id", index=True)
    environment_id: uuid.UUID = Field(foreign_key="environment.id", index=True)
    kind: str = Field(default=PipelineKind.DEPLOY, max_length=16)
    # How it was asked for (cli, dashboard, api, webhook, schedule, failover, …), and by whom: the
    # token's name, the webhook's or the schedule's (none for what Shipyard starts itself).
    trigger: str = Field(default="api", max_length=32)
    requested_by: str | None = Field(default=None, max_length=100)
    ref: str | None = Field(default=None, max_length=255)
    status: str = Field(default=PipelineStatus.QUEUED, max_length=16, index=True)
    artifact_id: str | None = Field(default=None, max_length=80)
    release_id: uuid.UUID | None = None
    deployment_id: uuid.UUID | None = None
    source_release_id: uuid.UUID | None = None  # promotion: the release promoted from
    # A restart of one process type only (`ps:restart web`); the other types keep running.
    process_type: str | None = Field(default=None, max_length=63)
    # How its release goes live (shared.schemas.rollouts.RolloutPlan), resolved when it was
    # asked for from the request and the environment's default; None: at once, unwatched.
    rollout: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = _timestamp()
    finished_at: datetime | None = _maybe_timestamp()


class StageRun(SQLModel, table=True):
    __tablename__ = "stage_run"
    __table_args__ = (UniqueConstraint("pipeline_id", "name"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    pipeline_id: uuid.UUID = Field(foreign_key="pipeline.id", index=True)
    name: str = Field(max_length=16)
    position: int
    status: str = Field(default=StageStatus.PENDING, max_length=16)
    attempt: int = 0
    hostname: str | None = Field(default=None, max_length=255)
    result_id: str | None = Field(default=None, max_length=80)
    cache_hit: bool = False
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    output: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Refreshed by the worker running the stage; a stale one means that worker is gone.
    heartbeat_at: datetime | None = _maybe_timestamp()
    queued_at: datetime | None = _maybe_timestamp()
    started_at: datetime | None = _maybe_timestamp()
    finished_at: datetime | None = _maybe_timestamp()


class Build(SQLModel, table=True):
    """One build stage's record: the commit it resolved, its log, and what it produced."""

    # The build cache's lookup (an app's latest build of a commit), whatever the app's history;
    # it also serves every lookup of an app's builds.
    __table_args__ = (Index("ix_build_cache", "app_id", "commit_sha", "builder", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    pipeline_id: uuid.UUID = Field(foreign_key="pipeline.id", unique=True)
    app_id: uuid.UUID = Field(foreign_key="app.id")
    ref: str = Field(max_length=255)
    commit_sha: str | None = Field(default=None, max_length=64)
    builder: str = Field(max_length=32)
    path: str = Field(default="", max_length=1024)  # the app's folder in the commit, then
    cache_hit: bool = False
    artifact_id: str | None = Field(default=None, max_length=80)
    log: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_at: datetime = _timestamp()
    finished_at: datetime | None = _maybe_timestamp()


class Artifact(SQLModel, table=True):
    """Immutable build output, named by the digest of its content."""

    # One current (not garbage-collected) artifact per commit, builder and folder of the app in
    # the commit: the build cache key (`apps update --path` builds the same commit anew).
    __table_args__ = (
        Index(
            "uq_artifact_current_build",
            "app_id",
            "commit_sha",
            "builder",
            "path",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    id: str = Field(primary_key=True, max_length=80)  # "sha256:<hex>"
    app_id: uuid.UUID = Field(foreign_key="app.id", index=True)
    commit_sha: str = Field(max_length=64)
    builder: str = Field(max_length=32)
    path: str = Field(default="", max_length=1024)  # the app's folder in the commit
    size: int
    location: str = Field(max_length=2048)
    # The Procfile it was built with: process types and the release command.
    procfile: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _timestamp()
    deleted_at: datetime | None = _maybe_timestamp()  # garbage-collected


class Release(SQLModel, table=True):
    """Artifact + config version = vN of one environment; never modified after creation."""

    __table_args__ = (UniqueConstraint("environment_id", "version"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    environment_id: uuid.UUID = Field(foreign_key="environment.id", index=True)
    version: int
    artifact_id: str = Field(foreign_key="artifact.id")
    config_version_id: uuid.UUID = Field(foreign_key="config_version.id")
    cause: str = Field(max_length=16)
    pipeline_id: uuid.UUID | None = Field(default=None, foreign_key="pipeline.id", unique=True)
    source_release_id: uuid.UUID | None = Field(default=None, foreign_key="release.id")
    status: str = Field(default=ReleaseStatus.PENDING, max_length=16)
    created_at: datetime = _timestamp()


class Deployment(SQLModel, table=True):
    """One run of one release in one environment; at most one is live per environment."""

    __table_args__ = (
        Index(
            "uq_deployment_one_live",
            "environment_id",
            unique=True,
            sqlite_where=text("status = 'live'"),
            postgresql_where=text("status = 'live'"),
        ),
        Index("ix_deployment_history", "environment_id", "started_at"),
        # The live deployment's lookup, also where the partial index above cannot serve it (a
        # prepared statement's generic plan does not know that its status parameter is 'live').
        Index("ix_deployment_environment_status", "environment_id", "status"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    environment_id: uuid.UUID = Field(foreign_key="environment.id")
    release_id: uuid.UUID = Field(foreign_key="release.id", index=True)
    pipeline_id: uuid.UUID | None = Field(default=None, foreign_key="pipeline.id", unique=True)
    cause: str = Field(default="deploy", max_length=16)
    status: str = Field(default=DeploymentStatus.STARTING, max_length=16)
    processes: list[ProcessRecord] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = _timestamp()
    started_at: datetime | None = _maybe_timestamp()  # when it went live
    switched_at: datetime | None = _maybe_timestamp()  # when the router sent it the traffic
    ended_at: datetime | None = _maybe_timestamp()  # when it was superseded or stopped
    retired_at: datetime | None = _maybe_timestamp()  # when its processes were all stopped
    # A canary or a watch (shared.schemas.rollouts.RolloutRecord): its plan, where it stands, the
    # figures of every step. Written by the run stage only.
    rollout: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # What a person asked of the canary (`promote` or `abort`), written by the API only; the run
    # stage reads it between its looks at the figures.
    rollout_command: str | None = Field(default=None, max_length=16)
    # Replaced, its processes kept running out of rotation until then (Environment.standby_seconds):
    # a rollback to its release takes them back; the run host's supervision stops them after.
    standby_until: datetime | None = _maybe_timestamp()


class ShareStatus(StrEnum):
    STARTING = "starting"  # asked to start (or starting) its processes
    READY = "ready"  # started and healthy, not routed yet
    FAILED = "failed"  # could not start healthy: `error` says why
    LIVE = "live"  # switched: its router serves them, what they replace is stopped
    STOPPED = "stopped"  # its processes stopped (the switch was called off)


class DeploymentShare(SQLModel, table=True):
    """One run host's part of a deployment spread over several: its processes, and how far its
    start and switch went. The coordinating host writes the row; the host itself advances it."""

    __tablename__ = "deployment_share"

    deployment_id: uuid.UUID = Field(foreign_key="deployment.id", primary_key=True)
    host: str = Field(primary_key=True, max_length=64)
    position: int  # its place in the placement: which of the formation's processes it runs
    hosts: int  # how many hosts share the deployment
    attempt: int  # the run stage's attempt that asked for it (older messages are ignored)
    status: str = Field(default=ShareStatus.STARTING, max_length=16)
    processes: list[ProcessRecord] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    updated_at: datetime = _timestamp()


class OneOffStatus(StrEnum):
    QUEUED = "queued"  # recorded, sent to its run host
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # exit code 0
    FAILED = "failed"  # a non-zero exit code, or it could not start (`error` says why)
    TIMED_OUT = "timed_out"  # killed at its timeout
    CANCELLED = "cancelled"  # killed because its caller cancelled it


class OneOff(SQLModel, table=True):
    """A one-off command (`shipyard run`) in a release of an environment: who ran what, where,
    and how it ended. Its output tail is kept with the release's secrets redacted."""

    __tablename__ = "one_off"
    __table_args__ = (Index("ix_one_off_environment_created", "environment_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    environment_id: uuid.UUID = Field(foreign_key="environment.id")
    release_id: uuid.UUID = Field(foreign_key="release.id")
    command: str = Field(sa_column=Column(Text, nullable=False))
    host: str = Field(max_length=64)
    requested_by: str = Field(max_length=100)
    timeout: float
    status: str = Field(default=OneOffStatus.QUEUED, max_length=16)
    exit_code: int | None = None
    output: str = Field(default="", sa_column=Column(Text, nullable=False))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = _timestamp()
    started_at: datetime | None = _maybe_timestamp()
    finished_at: datetime | None = _maybe_timestamp()


class RunHost(SQLModel, table=True):
    """A run host the beat has seen, and since when its run pool is down (None: it is up)."""

    __tablename__ = "run_host"

    name: str = Field(primary_key=True, max_length=64)
    last_seen_at: datetime | None = _maybe_timestamp()
    down_since: datetime | None = _maybe_timestamp()
    # What its apps' unpacked artifacts take on its disk, as its supervision last measured.
    unpacked_bytes: int | None = Field(default=None, sa_type=BigInteger)
    # Drained (`shipyard hosts drain`): its environments move off it and nothing is placed on it.
    draining: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})


class ApiToken(SQLModel, table=True):
    """An API token: only its SHA-256 is stored; the token itself is shown once, at creation."""

    __tablename__ = "api_token"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=100)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    prefix: str = Field(max_length=16)  # the first characters, to recognise a token in a list
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _timestamp()
    last_used_at: datetime | None = _maybe_timestamp()
    revoked_at: datetime | None = _maybe_timestamp()


class DashboardSession(SQLModel, table=True):
    """A dashboard sign-in: the cookie carries its id, the store only the id's SHA-256. Signing
    out deletes the row, so a copy of the cookie stops working with it."""

    __tablename__ = "dashboard_session"

    id_hash: str = Field(max_length=64, primary_key=True)
    created_at: datetime = _timestamp()
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))


# --- Triggers: incoming webhooks, scheduled promotions, outgoing notifications ---------------


class WebhookConfig(SQLModel, table=True):
    """An app's incoming webhooks: its secret (a Fernet token), repository and ref rules."""

    __tablename__ = "webhook_config"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    app_id: uuid.UUID = Field(foreign_key="app.id", unique=True)
    secret: str = Field(sa_column=Column(Text, nullable=False))
    # Lowercased "owner/name" (GitHub) and "group/name" (GitLab): how a delivery finds its app.
    github_repository: str | None = Field(default=None, max_length=255, index=True)
    gitlab_project: str | None = Field(default=None, max_length=255, index=True)
    # [{"branch": "main", "environment": "staging"}, {"tag": "v*", "environment": "production"}]
    rules: list[dict[str, str]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class WebhookDelivery(SQLModel, table=True):
    """One authenticated delivery to one app; its unique key is what makes a redelivery a no-op."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("provider", "delivery_id", "app_id", name="uq_webhook_delivery_key"),
        Index("ix_webhook_delivery_app_received", "app_id", "received_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    provider: str = Field(max_length=16)  # github, gitlab, generic
    delivery_id: str = Field(max_length=100)
    app_id: uuid.UUID = Field(foreign_key="app.id")
    event: str = Field(max_length=64)
    outcome: str = Field(max_length=16)  # started, ignored, ping
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    ref: str | None = Field(default=None, max_length=255)
    commit_sha: str | None = Field(default=None, max_length=64)
    environment: str | None = Field(default=None, max_length=63)
    pipeline_id: uuid.UUID | None = Field(default=None, foreign_key="pipeline.id")
    received_at: datetime = _timestamp()


class Schedule(SQLModel, table=True):
    """A cron-timed promotion between two environments of an app, guarded by gates."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    app_id: uuid.UUID = Field(foreign_key="app.id", index=True)
    action: str = Field(default="promote", max_length=16)
    source_environment_id: uuid.UUID = Field(foreign_key="environment.id")
    target_environment_id: uuid.UUID = Field(foreign_key="environment.id")
    cron: str = Field(max_length=100)
    timezone: str = Field(max_length=64)
    min_soak_seconds: int = 0
    require_healthy: bool = True
    # The next instant the schedule is due (UTC); the beat's tick fires what is past it.
    next_due_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    created_at: datetime = _timestamp()
    deleted_at: datetime | None = _maybe_timestamp()  # removed; its runs stay queryable


class ScheduleRun(SQLModel, table=True):
    """One due time of a schedule: fired (with its pipeline) or skipped (with the reason)."""

    __tablename__ = "schedule_run"
    # Two beats, or two ticks, firing the same due time make one run: the second insert fails.
    __table_args__ = (UniqueConstraint("schedule_id", "due_at", name="uq_schedule_run_due"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    schedule_id: uuid.UUID = Field(foreign_key="schedule.id", index=True)
    due_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    outcome: str = Field(max_length=16)  # fired, skipped
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    pipeline_id: uuid.UUID | None = Field(default=None, foreign_key="pipeline.id")
    ran_at: datetime = _timestamp()


class Subscription(SQLModel, table=True):
    """Where an app's events are POSTed, which events, and the key that signs them."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    app_id: uuid.UUID = Field(foreign_key="app.id", index=True)
    url: str = Field(max_length=2048)
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    secret: str = Field(sa_column=Column(Text, nullable=False))  # a Fernet token
    created_at: datetime = _timestamp()
    deleted_at: datetime | None = _maybe_timestamp()


class Notification(SQLModel, table=True):
    """One event for one subscription: the exact body sent, and where its delivery stands."""

    __table_args__ = (
        Index("ix_notification_subscription_created", "subscription_id", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    subscription_id: uuid.UUID = Field(foreign_key="subscription.id")
    event: str = Field(max_length=32)
    body: str = Field(sa_column=Column(Text, nullable=False))  # JSON, signed byte for byte
    status: str = Field(default="pending", max_length=16)  # pending, sending, delivered, failed
    attempts: int = 0
    claimed_at: datetime | None = _maybe_timestamp()  # when the attempt under way began
    created_at: datetime = _timestamp()
    finished_at: datetime | None = _maybe_timestamp()


class NotificationAttempt(SQLModel, table=True):
    """One POST of a notification: the receiver's status code (or the error) and how long."""

    __tablename__ = "notification_attempt"
    __table_args__ = (
        UniqueConstraint("notification_id", "number", name="uq_notification_attempt_number"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    notification_id: uuid.UUID = Field(foreign_key="notification.id", index=True)
    number: int
    status_code: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    duration_ms: float
    attempted_at: datetime = _timestamp()


# --- HTTPS: certificates for environments' domains -------------------------------------------


class CertificateSource(StrEnum):
    ACME = "acme"  # ordered from the ACME CA, renewed before it expires
    UPLOADED = "uploaded"  # given by a user (`certs add`); never renewed by Shipyard


class CertificateStatus(StrEnum):
    PENDING = "pending"  # no certificate yet: its first order is due or under way
    ISSUED = "issued"  # served; a renewal that fails keeps it issued and records `error`
    FAILED = "failed"  # its first order failed (`error` says why); tried again with backoff


class Certificate(SQLModel, table=True):
    """One domain's certificate: the chain (public) and its key, encrypted like secrets, which
    every router of the installation loads from here."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    environment_id: uuid.UUID = Field(foreign_key="environment.id", index=True)
    domain: str = Field(max_length=253, unique=True)
    source: str = Field(default=CertificateSource.ACME, max_length=16)
    status: str = Field(default=CertificateStatus.PENDING, max_length=16)
    cert_pem: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # leaf first
    key: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # a Fernet token
    fingerprint: str | None = Field(default=None, max_length=64)  # SHA-256 of the leaf's DER
    issuer: str | None = Field(default=None, max_length=1024)
    not_before: datetime | None = _maybe_timestamp()
    not_after: datetime | None = _maybe_timestamp()
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    attempts: int = 0  # failed orders in a row
    next_attempt_at: datetime | None = _maybe_timestamp()
    # The lease of the worker ordering it (None: no order under way); an order records its
    # result only while its lease is still the one it took.
    ordering_since: datetime | None = _maybe_timestamp()
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class AcmeAccount(SQLModel, table=True):
    """The installation's account with one ACME CA: its key (a Fernet token) and its URL."""

    __tablename__ = "acme_account"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    directory_url: str = Field(max_length=2048, unique=True)
    key: str = Field(sa_column=Column(Text, nullable=False))
    uri: str | None = Field(default=None, max_length=2048)
    created_at: datetime = _timestamp()
