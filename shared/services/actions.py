"""What a person asks for by name: deploy a ref, roll back, promote. The API's JSON routes and the
dashboard both call these, then `pipelines.launch`; scope checks stay with the caller."""

from __future__ import annotations

from sqlmodel import Session

from shipyard.shared.models import Pipeline
from shipyard.shared.schemas import RolloutRequest
from shipyard.shared.services import apps, pipelines, rollbacks, rollouts
from shipyard.shared.stages import PipelineKind


def deploy(
    *,
    session: Session,
    app: str,
    environment: str,
    ref: str,
    trigger: str,
    requested_by: str | None = None,
    rollout: RolloutRequest | None = None,
) -> Pipeline:
    """A queued build → release → run pipeline of `ref` in the app's `environment`, going live
    as `rollout` asks over the environment's default plan."""
    owner, target = apps.app_and_environment(session=session, app=app, name=environment)
    return pipelines.create_pipeline(
        session=session,
        app=owner,
        environment=target,
        kind=PipelineKind.DEPLOY,
        trigger=trigger,
        requested_by=requested_by,
        ref=ref,
        rollout=rollouts.resolve_plan(
            environment=target, kind=PipelineKind.DEPLOY, request=rollout
        ),
    )


def rollback(
    *,
    session: Session,
    app: str,
    environment: str,
    to_version: int | None,
    trigger: str,
    requested_by: str | None = None,
) -> Pipeline:
    """A run-only pipeline of an earlier release, exactly as it was (default: the previous)."""
    owner = apps.get_app(session=session, name=app)
    return rollbacks.create_rollback_pipeline(
        session=session,
        app=owner,
        environment=apps.get_environment(session=session, app=owner, name=environment),
        to_version=to_version,
        trigger=trigger,
        requested_by=requested_by,
    )


def promote(
    *,
    session: Session,
    app: str,
    source: str,
    target: str,
    trigger: str,
    requested_by: str | None = None,
    rollout: RolloutRequest | None = None,
) -> Pipeline:
    """A release → run pipeline of what is live in `source`, with `target`'s own config, going
    live as `rollout` asks over `target`'s default plan."""
    owner = apps.get_app(session=session, name=app)
    return rollbacks.create_promotion_pipeline(
        session=session,
        app=owner,
        source=apps.get_environment(session=session, app=owner, name=source),
        target=apps.get_environment(session=session, app=owner, name=target),
        trigger=trigger,
        requested_by=requested_by,
        rollout=rollout,
    )
