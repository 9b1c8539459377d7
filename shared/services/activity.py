"""An environment's activity, as the dashboard shows it: what is live, what went live when and
who or what started it, each release with the span it was live, and the latest pipelines."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from shipyard.shared import routing
from shipyard.shared.models import (
    App,
    ConfigVersion,
    Deployment,
    DeploymentStatus,
    Environment,
    Pipeline,
    Release,
)
from shipyard.shared.schemas import (
    CurrentPublic,
    DeploymentPublic,
    EnvironmentPublic,
    ReleasePublic,
)
from shipyard.shared.services import apps, deployments
from shipyard.shared.services.deployments import deployment_view
from shipyard.shared.services.releases import release_view
from shipyard.shared.settings import Settings


@dataclass(frozen=True)
class EnvironmentSummary:
    """An environment and what runs in it now (None when nothing is live)."""

    environment: EnvironmentPublic
    current: CurrentPublic | None


@dataclass(frozen=True)
class DeploymentEntry:
    """A time a release went (or tried to go) live, and what started it."""

    deployment: DeploymentPublic
    trigger: str | None
    pipeline_id: uuid.UUID | None


@dataclass(frozen=True)
class ReleaseEntry:
    """A release, what started the pipeline that made it, and when it was live."""

    release: ReleasePublic
    trigger: str | None
    first_live: datetime | None  # when it first went live (None if it never did)
    last_live: datetime | None  # when it last went live (a rollback runs it again)
    live_until: datetime | None  # when it last stopped being live
    live: bool  # whether it is live now


@dataclass(frozen=True)
class PipelineEntry:
    """A pipeline of an environment, as a line in a list."""

    id: uuid.UUID
    kind: str
    status: str
    trigger: str
    requested_by: str | None
    ref: str | None
    created_at: datetime
    finished_at: datetime | None


def environment_summary(
    *, session: Session, settings: Settings, app: App, environment: Environment
) -> EnvironmentSummary:
    """The environment with its stable URL and its live release, deployment and processes."""
    view = routing.environment_public(settings, environment, app.name)
    live = deployments.current(session=session, environment=environment)
    if live is not None:
        live.url = view.url
    return EnvironmentSummary(environment=view, current=live)


def app_summary(*, session: Session, settings: Settings, app: App) -> list[EnvironmentSummary]:
    """Each environment of `app`, by name, with what runs in it."""
    return [
        environment_summary(session=session, settings=settings, app=app, environment=environment)
        for environment in apps.list_environments(session=session, app=app)
    ]


def deployment_history(
    *, session: Session, environment: Environment, limit: int
) -> list[DeploymentEntry]:
    """The environment's deployments, newest first, with the trigger of each one's pipeline."""
    rows = session.exec(
        select(Deployment, Release.version, Pipeline.trigger, Pipeline.requested_by)
        .join(Release, col(Release.id) == col(Deployment.release_id))
        .join(Pipeline, col(Pipeline.id) == col(Deployment.pipeline_id), isouter=True)
        .where(Deployment.environment_id == environment.id)
        .order_by(col(Deployment.created_at).desc())
        .limit(limit)
    )
    return [
        DeploymentEntry(
            deployment=deployment_view(deployment, version, trigger, requested_by),
            trigger=trigger,
            pipeline_id=deployment.pipeline_id,
        )
        for deployment, version, trigger, requested_by in rows
    ]


def release_history(*, session: Session, environment: Environment) -> list[ReleaseEntry]:
    """The environment's releases, newest first, each with its trigger and when it was live."""
    rows = session.exec(
        select(Release, ConfigVersion.version, Pipeline.trigger)
        .join(ConfigVersion, col(ConfigVersion.id) == col(Release.config_version_id))
        .join(Pipeline, col(Pipeline.id) == col(Release.pipeline_id), isouter=True)
        .where(Release.environment_id == environment.id)
        .order_by(col(Release.version).desc())
    )
    spans = _live_spans(session, environment)
    entries = []
    for release, config_version, trigger in rows:
        went_live = spans.get(release.id, [])
        entries.append(
            ReleaseEntry(
                release=release_view(release, config_version),
                trigger=trigger,
                first_live=went_live[0].started_at if went_live else None,
                last_live=went_live[-1].started_at if went_live else None,
                live_until=went_live[-1].ended_at if went_live else None,
                live=bool(went_live) and went_live[-1].status == DeploymentStatus.LIVE,
            )
        )
    return entries


def _live_spans(session: Session, environment: Environment) -> dict[uuid.UUID, list[Deployment]]:
    """Per release, its deployments that went live, oldest first (one query)."""
    spans: dict[uuid.UUID, list[Deployment]] = {}
    went_live = session.exec(
        select(Deployment)
        .where(
            Deployment.environment_id == environment.id,
            col(Deployment.started_at).is_not(None),
        )
        .order_by(col(Deployment.started_at))
    )
    for deployment in went_live:
        spans.setdefault(deployment.release_id, []).append(deployment)
    return spans


def recent_pipelines(
    *, session: Session, environment: Environment, limit: int
) -> list[PipelineEntry]:
    """The environment's latest pipelines, newest first."""
    rows = session.exec(
        select(Pipeline)
        .where(Pipeline.environment_id == environment.id)
        .order_by(col(Pipeline.created_at).desc())
        .limit(limit)
    )
    return [
        PipelineEntry(
            id=pipeline.id,
            kind=pipeline.kind,
            status=pipeline.status,
            trigger=pipeline.trigger,
            requested_by=pipeline.requested_by,
            ref=pipeline.ref,
            created_at=pipeline.created_at,
            finished_at=pipeline.finished_at,
        )
        for pipeline in rows
    ]
