"""Garbage collection of artifacts: keep what may run again, expire releases that cannot."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from shipyard.shared import constants
from shipyard.shared.models import (
    Artifact,
    Deployment,
    DeploymentStatus,
    Environment,
    Pipeline,
    Release,
    ReleaseStatus,
    utcnow,
)
from shipyard.shared.services import queueing


def artifacts_to_keep(*, session: Session, releases_per_environment: int) -> set[str]:
    """Artifacts of live deployments, of each environment's last N releases, of active pipelines."""
    keep: set[str] = set(
        session.exec(
            select(Release.artifact_id)
            .join(Deployment, col(Deployment.release_id) == col(Release.id))
            .where(Deployment.status == DeploymentStatus.LIVE)
        )
    )
    for environment_id in session.exec(select(Environment.id)):
        keep.update(
            session.exec(
                select(Release.artifact_id)
                .where(Release.environment_id == environment_id)
                .order_by(col(Release.version).desc())
                .limit(releases_per_environment)
            )
        )
    keep.update(
        artifact_id
        for artifact_id in session.exec(select(Pipeline.artifact_id).where(queueing.active()))
        if artifact_id is not None
    )
    return keep


def collect_garbage(
    *, session: Session, releases_per_environment: int, now: datetime | None = None
) -> tuple[list[Artifact], list[Release]]:
    """Mark unkept artifacts deleted and their releases expired; returns both (to remove files)."""
    now = now or utcnow()
    keep = artifacts_to_keep(session=session, releases_per_environment=releases_per_environment)
    released = set(session.exec(select(Release.artifact_id).distinct()))
    grace = now - timedelta(seconds=constants.UNRELEASED_ARTIFACT_GRACE_SECONDS)
    removed: list[Artifact] = []
    for artifact in session.exec(select(Artifact).where(col(Artifact.deleted_at).is_(None))):
        if artifact.id in keep:
            continue
        if artifact.id not in released and artifact.created_at > grace:
            continue  # just built, its release may be on its way
        artifact.deleted_at = now
        session.add(artifact)
        removed.append(artifact)
    expired: list[Release] = []
    if removed:
        for release in session.exec(
            select(Release).where(
                col(Release.artifact_id).in_([a.id for a in removed]),
                Release.status != ReleaseStatus.EXPIRED,
            )
        ):
            release.status = ReleaseStatus.EXPIRED
            session.add(release)
            expired.append(release)
    session.flush()
    return removed, expired
