"""Releases: artifact + config version, numbered v1, v2, … per environment without gaps."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import Table, bindparam, func, or_, update
from sqlmodel import Session, col, select

from shipyard.shared.db import core_connection
from shipyard.shared.exceptions import NotFound
from shipyard.shared.models import (
    ConfigVersion,
    Environment,
    Pipeline,
    Release,
    ReleaseStatus,
    utcnow,
)
from shipyard.shared.schemas import ReleasePublic
from shipyard.shared.services.config import newest_config
from shipyard.shared.stages import PipelineKind

_ENVIRONMENTS: Table = Environment.__table__  # type: ignore[attr-defined]
_RELEASES: Table = Release.__table__  # type: ignore[attr-defined]
# Built once: the gate of every release stage and every switch takes this lock.
_LOCK = (
    select(_ENVIRONMENTS.c.id)
    .where(_ENVIRONMENTS.c.id == bindparam("p_environment"))
    .with_for_update()
)
_HIGHEST = select(func.max(_RELEASES.c.version)).where(
    _RELEASES.c.environment_id == bindparam("p_environment")
)


def lock_environment(*, session: Session, environment_id: uuid.UUID) -> None:
    """Lock the environment row for this transaction: numbering and switches are serialised.

    PostgreSQL takes a row lock; SQLite's transactions already begin IMMEDIATE (shared.db).
    A deleted environment raises NoResultFound.
    """
    core_connection(session).execute(_LOCK, {"p_environment": environment_id}).one()


def create_release(
    *,
    session: Session,
    pipeline: Pipeline,
    artifact_id: str,
    cause: str,
    source_release_id: uuid.UUID | None = None,
) -> Release:
    """The release of `pipeline`: created once, returned again on a redelivered message."""
    existing = session.exec(select(Release).where(Release.pipeline_id == pipeline.id)).first()
    if existing is not None:
        return existing
    environment_id = pipeline.environment_id
    lock_environment(session=session, environment_id=environment_id)
    config = newest_config(session=session, environment_id=environment_id)
    if config is None:
        raise NotFound(f"environment {environment_id} has no config")
    connection = core_connection(session)
    highest = connection.execute(_HIGHEST, {"p_environment": environment_id}).scalar_one()
    release = Release(
        environment_id=environment_id,
        version=(highest or 0) + 1,
        artifact_id=artifact_id,
        config_version_id=config.id,
        cause=cause,
        pipeline_id=pipeline.id,
        source_release_id=source_release_id,
    )
    session.add(release)
    session.flush()
    return release


# Why a release was made, by the kind of pipeline that made it.
_CAUSES = {
    PipelineKind.DEPLOY: "deploy",
    PipelineKind.CONFIG: "config",
    PipelineKind.PROMOTION: "promotion",
}


def release_cause(pipeline: Pipeline) -> str:
    """The cause recorded on the release a pipeline makes."""
    return _CAUSES[PipelineKind(pipeline.kind)]


def fail_release(*, session: Session, release: Release) -> None:
    """Record that `release` will not run (its release phase failed)."""
    release.status = ReleaseStatus.FAILED
    session.add(release)
    session.flush()


def acquire_release_phase(
    *, session: Session, environment_id: uuid.UUID, pipeline_id: uuid.UUID, stale_after: float
) -> bool:
    """The SQL guard behind the release-phase lock: take it unless another live holder has it."""
    now = utcnow()
    result = session.execute(
        update(Environment)
        .where(
            col(Environment.id) == environment_id,
            or_(
                col(Environment.release_phase_holder).is_(None),
                col(Environment.release_phase_holder) == pipeline_id,
                col(Environment.release_phase_since) < now - timedelta(seconds=stale_after),
            ),
        )
        .values(release_phase_holder=pipeline_id, release_phase_since=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def end_release_phase(
    *, session: Session, environment_id: uuid.UUID, pipeline_id: uuid.UUID
) -> None:
    """Give the release-phase guard back (only if this pipeline holds it)."""
    session.execute(
        update(Environment)
        .where(
            col(Environment.id) == environment_id,
            col(Environment.release_phase_holder) == pipeline_id,
        )
        .values(release_phase_holder=None, release_phase_since=None)
    )


def get_release(*, session: Session, release_id: uuid.UUID) -> Release:
    """The release, or NotFound."""
    release = session.get(Release, release_id)
    if release is None:
        raise NotFound(f"release {release_id} not found")
    return release


def get_release_by_version(*, session: Session, environment: Environment, version: int) -> Release:
    """Release vN of `environment`, or NotFound."""
    release = session.exec(
        select(Release).where(Release.environment_id == environment.id, Release.version == version)
    ).first()
    if release is None:
        raise NotFound(f"{environment.name} has no release v{version}")
    return release


def release_view(release: Release, config_version: int) -> ReleasePublic:
    """The API view of a release whose config version number is known (no table-only column)."""
    return ReleasePublic(
        **release.model_dump(exclude={"environment_id", "config_version_id"}),
        config_version=config_version,
    )


def release_public(*, session: Session, release: Release) -> ReleasePublic:
    """The API view of a release."""
    config = session.get(ConfigVersion, release.config_version_id)
    assert config is not None
    return release_view(release, config.version)


def list_releases(*, session: Session, environment: Environment) -> list[ReleasePublic]:
    """The environment's releases, newest first."""
    rows = session.exec(
        select(Release, ConfigVersion.version)
        .join(ConfigVersion, col(ConfigVersion.id) == col(Release.config_version_id))
        .where(Release.environment_id == environment.id)
        .order_by(col(Release.version).desc())
    )
    return [release_view(release, config_version) for release, config_version in rows]
