"""Rollback, promotion and restart: `POST …/rollback`, `POST /v1/apps/{app}/promotions`,
`POST …/restart`."""

from __future__ import annotations

from fastapi import APIRouter, status

from shipyard.api.auth import PrincipalDep, deploy_scoped
from shipyard.api.deps import ClientDep, PublisherDep, SessionDep
from shipyard.shared.schemas import PipelinePublic, PromotionCreate, RestartCreate, RollbackCreate
from shipyard.shared.services import actions, apps, formation, pipelines

router = APIRouter(tags=["operations"])


@router.post("/apps/{app}/environments/{env}/rollback", status_code=status.HTTP_202_ACCEPTED)
@deploy_scoped
def rollback(
    app: str,
    env: str,
    data: RollbackCreate,
    session: SessionDep,
    publish: PublisherDep,
    principal: PrincipalDep,
    client: ClientDep,
) -> PipelinePublic:
    """Run an earlier release again, exactly as it was (default: the one live before this); a
    canary or watch under way is aborted first."""
    principal.require_deploy(env)
    pipeline = actions.rollback(
        session=session,
        app=app,
        environment=env,
        to_version=data.to_version,
        trigger=client,
        requested_by=principal.name,
    )
    return pipelines.launch(session=session, pipeline=pipeline, publish=publish)


@router.post("/apps/{app}/promotions", status_code=status.HTTP_202_ACCEPTED)
@deploy_scoped
def promote(
    app: str,
    data: PromotionCreate,
    session: SessionDep,
    publish: PublisherDep,
    principal: PrincipalDep,
    client: ClientDep,
) -> PipelinePublic:
    """Release the artifact live in `from` to `to`, with `to`'s own config, and run it (as
    `rollout` asks over `to`'s default plan)."""
    principal.require_deploy(data.target)
    pipeline = actions.promote(
        session=session,
        app=app,
        source=data.source,
        target=data.target,
        trigger=client,
        requested_by=principal.name,
        rollout=data.rollout,
    )
    return pipelines.launch(session=session, pipeline=pipeline, publish=publish)


@router.post("/apps/{app}/environments/{env}/restart", status_code=status.HTTP_202_ACCEPTED)
@deploy_scoped
def restart(
    app: str,
    env: str,
    session: SessionDep,
    publish: PublisherDep,
    principal: PrincipalDep,
    client: ClientDep,
    data: RestartCreate | None = None,
) -> PipelinePublic:
    """Run the live release again, as it runs: new processes, healthy before they take the
    traffic, the old ones drained (`restart` pipeline); with `process_type`, only that type's
    processes (422 if none runs). 409 while a pipeline is under way."""
    principal.require_deploy(env)
    owner = apps.get_app(session=session, name=app)
    environment = apps.get_environment(session=session, app=owner, name=env)
    pipeline = formation.restart(
        session=session,
        app=owner,
        environment=environment,
        trigger=client,
        requested_by=principal.name,
        process_type=data.process_type if data is not None else None,
    )
    return pipelines.launch(session=session, pipeline=pipeline, publish=publish)
