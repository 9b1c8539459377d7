"""Rollback and promotion: run an earlier release again; move a live artifact to the next stage."""

from __future__ import annotations

from sqlmodel import Session, col, select

from shipyard.shared.db import fixed_limit
from shipyard.shared.exceptions import Conflict, InvalidInput
from shipyard.shared.models import (
    App,
    Artifact,
    Deployment,
    DeploymentStatus,
    Environment,
    Pipeline,
    Release,
    ReleaseStatus,
)
from shipyard.shared.schemas import RolloutRequest
from shipyard.shared.services import deployments, pipelines, releases, rollouts
from shipyard.shared.stages import PipelineKind


def rollback_target(
    *,
    session: Session,
    environment: Environment,
    to_version: int | None,
    canary: Deployment | None = None,
) -> Release:
    """Release `to_version`, or the one live before the current one; refused if it cannot run.

    While `canary` (a deployment whose canary steps run) has a share of the requests, the
    current release is the one it would replace: the live one, whose share its abort gives back
    all of the requests. Rolling back then means the live release (the default), run again.
    """
    live = deployments.live_deployment(session=session, environment_id=environment.id)
    replacing = canary is not None and canary.status == DeploymentStatus.STARTING
    if to_version is not None:
        release = releases.get_release_by_version(
            session=session, environment=environment, version=to_version
        )
    elif replacing and live is not None:
        release = releases.get_release(session=session, release_id=live.release_id)
    else:
        release = _previously_live(session, environment, live)
    if live is not None and live.release_id == release.id and not replacing:
        raise Conflict(f"v{release.version} is already live in {environment.name}")
    if release.status == ReleaseStatus.EXPIRED or _artifact_gone(session, release):
        raise Conflict(
            f"v{release.version} has expired: its artifact was garbage-collected, "
            "so it can no longer be run (deploy its commit again instead)"
        )
    if release.status != ReleaseStatus.SUCCEEDED:
        raise Conflict(f"v{release.version} never ran successfully, so it cannot be rolled back to")
    return release


def _previously_live(
    session: Session, environment: Environment, live: Deployment | None
) -> Release:
    query = (
        select(Release)
        .join(Deployment, col(Deployment.release_id) == col(Release.id))
        .where(
            Deployment.environment_id == environment.id,
            col(Deployment.status).in_([DeploymentStatus.SUPERSEDED, DeploymentStatus.STOPPED]),
        )
        .order_by(col(Deployment.started_at).desc())
    )
    if live is not None:
        query = query.where(Release.id != live.release_id)
    release = session.exec(query.limit(fixed_limit(1))).first()
    if release is None:
        raise Conflict(f"{environment.name} has no earlier release to roll back to")
    return release


def _artifact_gone(session: Session, release: Release) -> bool:
    artifact = session.get(Artifact, release.artifact_id)
    return artifact is None or artifact.deleted_at is not None


def create_rollback_pipeline(
    *,
    session: Session,
    app: App,
    environment: Environment,
    to_version: int | None,
    trigger: str,
    requested_by: str | None = None,
) -> Pipeline:
    """A run-only pipeline that runs an earlier release exactly as it was.

    It takes precedence over a canary or a watch under way: that rollout is told to yield in
    the same transaction, so it ends within its next look at the figures (a second or two) and
    the rollback, queued behind its pipeline, runs next.
    """
    running = rollouts.active(session=session, environment_id=environment.id)
    release = rollback_target(
        session=session, environment=environment, to_version=to_version, canary=running
    )
    pipeline = pipelines.create_pipeline(
        session=session,
        app=app,
        environment=environment,
        kind=PipelineKind.ROLLBACK,
        trigger=trigger,
        requested_by=requested_by,
        artifact_id=release.artifact_id,
        release_id=release.id,
    )
    if running is not None:
        try:
            rollouts.give_command(session=session, environment=environment, command="yield")
        except Conflict:
            pass  # it ended since it was read: nothing left to abort
    return pipeline


def create_promotion_pipeline(
    *,
    session: Session,
    app: App,
    source: Environment,
    target: Environment,
    trigger: str,
    requested_by: str | None = None,
    rollout: RolloutRequest | None = None,
) -> Pipeline:
    """Release → run in `target` of the artifact live in `source`, with `target`'s config; it
    goes live as `rollout` asks over `target`'s default plan."""
    if source.id == target.id:
        raise InvalidInput("promotion needs two different environments")
    live = deployments.live_deployment(session=session, environment_id=source.id)
    if live is None:
        raise Conflict(f"{source.name} has no live, healthy deployment to promote")
    release = session.get(Release, live.release_id)
    assert release is not None
    if _artifact_gone(session, release):
        raise Conflict(f"the artifact live in {source.name} is no longer stored")
    return pipelines.create_pipeline(
        session=session,
        app=app,
        environment=target,
        kind=PipelineKind.PROMOTION,
        trigger=trigger,
        requested_by=requested_by,
        artifact_id=release.artifact_id,
        source_release_id=release.id,
        rollout=rollouts.resolve_plan(
            environment=target, kind=PipelineKind.PROMOTION, request=rollout
        ),
    )
