"""Which artifacts a run host keeps unpacked for an app: what runs, what is about to, and the
releases a rollback most likely goes back to. The rest is removed after each run stage."""

from __future__ import annotations

import uuid

from sqlalchemy import and_, func, or_
from sqlmodel import Session, col, select

from shipyard.shared import constants
from shipyard.shared.models import (
    Deployment,
    DeploymentStatus,
    Environment,
    OneOff,
    OneOffStatus,
    Pipeline,
    PipelineStatus,
    Release,
)


def artifacts_to_keep(
    *, session: Session, app_id: uuid.UUID, warm: int = constants.WARM_RELEASES
) -> set[str]:
    """The artifacts of app `app_id` that a run host keeps unpacked: those of deployments whose
    processes may still run (starting, live, or replaced and not yet retired), of unfinished
    pipelines (a release phase, a rollback or a promotion under way), of one-off commands
    queued or running, and of the `warm` newest releases of each environment besides."""
    environments = select(Environment.id).where(Environment.app_id == app_id)
    running = (
        select(Release.artifact_id)
        .join(Deployment, col(Deployment.release_id) == col(Release.id))
        .where(
            col(Deployment.environment_id).in_(environments),
            or_(
                col(Deployment.status).in_([DeploymentStatus.STARTING, DeploymentStatus.LIVE]),
                and_(
                    col(Deployment.status) == DeploymentStatus.SUPERSEDED,
                    col(Deployment.retired_at).is_(None),
                ),
            ),
        )
    )
    unfinished = col(Pipeline.status).in_([PipelineStatus.QUEUED, PipelineStatus.RUNNING])
    pipelines = select(Pipeline.artifact_id, Pipeline.release_id, Pipeline.source_release_id).where(
        Pipeline.app_id == app_id, unfinished
    )
    keep = {artifact for artifact in session.exec(running)}
    release_ids: set[uuid.UUID] = set()
    for artifact_id, release_id, source_release_id in session.exec(pipelines):
        if artifact_id is not None:
            keep.add(artifact_id)
        release_ids.update(r for r in (release_id, source_release_id) if r is not None)
    if release_ids:
        keep.update(
            session.exec(select(Release.artifact_id).where(col(Release.id).in_(release_ids)))
        )
    newest = (
        select(
            Release.artifact_id,
            func.row_number()
            .over(partition_by=col(Release.environment_id), order_by=col(Release.version).desc())
            .label("rank"),
        )
        .where(col(Release.environment_id).in_(environments))
        .subquery()
    )
    keep.update(session.exec(select(newest.c.artifact_id).where(newest.c.rank <= warm)))
    # One-off commands queued or running (`shipyard run --release N` may name an old release).
    one_offs = (
        select(Release.artifact_id)
        .join(OneOff, col(OneOff.release_id) == col(Release.id))
        .where(
            col(OneOff.environment_id).in_(environments),
            col(OneOff.status).in_([OneOffStatus.QUEUED, OneOffStatus.RUNNING]),
        )
    )
    keep.update(session.exec(one_offs))
    return keep
