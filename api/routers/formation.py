"""`/v1/apps/{app}/environments/{env}/formation`: how many processes of each type run."""

from __future__ import annotations

from fastapi import APIRouter

from shipyard.api.auth import PrincipalDep, deploy_scoped
from shipyard.api.deps import ClientDep, PublisherDep, SessionDep
from shipyard.shared.schemas import FormationPatch, FormationPublic
from shipyard.shared.services import apps, formation, pipelines

router = APIRouter(prefix="/apps/{app}/environments/{env}/formation", tags=["formation"])


@router.get("")
def get_formation(app: str, env: str, session: SessionDep) -> FormationPublic:
    """The process counts set for the environment (a type not listed runs once)."""
    environment = apps.environment_by_names(session=session, app=app, name=env)
    return FormationPublic(formation=environment.formation)


@router.patch("")
@deploy_scoped
def scale(
    app: str,
    env: str,
    data: FormationPatch,
    session: SessionDep,
    publish: PublisherDep,
    principal: PrincipalDep,
    client: ClientDep,
) -> FormationPublic:
    """Set process counts; the live release runs again with them (no new release)."""
    principal.require_deploy(env)
    owner = apps.get_app(session=session, name=app)
    environment = apps.get_environment(session=session, app=owner, name=env)
    pipeline = formation.scale(
        session=session,
        app=owner,
        environment=environment,
        changes=data.processes,
        trigger=client,
        requested_by=principal.name,
    )
    session.commit()
    if pipeline is not None:
        pipelines.start(session=session, pipeline=pipeline, publish=publish)
    return FormationPublic(
        formation=environment.formation, pipeline_id=pipeline.id if pipeline else None
    )
