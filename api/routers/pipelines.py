"""Pipelines: start one, follow it, read its build log."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from api.auth import PrincipalDep, deploy_scoped
from api.deps import PublisherDep, SessionDep
from shared.exceptions import NotFound
from shared.models import PipelineKind
from shared.schemas import BuildLogPublic, PipelineCreate, PipelinePublic
from shared.services import apps, builds, pipelines

router = APIRouter(tags=["pipelines"])


@router.post("/apps/{app}/pipelines", status_code=status.HTTP_202_ACCEPTED)
@deploy_scoped
def create_pipeline(
    app: str,
    data: PipelineCreate,
    session: SessionDep,
    publish: PublisherDep,
    principal: PrincipalDep,
) -> PipelinePublic:
    """Build `ref`, release it and run it in `environment`; answers at once with the pipeline."""
    principal.require_deploy(data.environment)
    owner = apps.get_app(session=session, name=app)
    environment = apps.get_environment(session=session, app=owner, name=data.environment)
    pipeline = pipelines.create_pipeline(
        session=session,
        app=owner,
        environment=environment,
        kind=PipelineKind.DEPLOY,
        trigger=data.trigger,
        ref=data.ref,
    )
    session.commit()
    pipelines.start(session=session, pipeline=pipeline, publish=publish)
    return pipelines.pipeline_public(session=session, pipeline=pipeline)


@router.get("/pipelines/{pipeline_id}")
def get_pipeline(pipeline_id: uuid.UUID, session: SessionDep) -> PipelinePublic:
    """A pipeline with the status, worker, timing, result and error of each stage."""
    pipeline = pipelines.get_pipeline(session=session, pipeline_id=pipeline_id)
    return pipelines.pipeline_public(session=session, pipeline=pipeline)


@router.get("/pipelines/{pipeline_id}/log")
def get_build_log(pipeline_id: uuid.UUID, session: SessionDep) -> BuildLogPublic:
    """The build log of a pipeline's build stage."""
    pipelines.get_pipeline(session=session, pipeline_id=pipeline_id)
    log = builds.build_log(session=session, pipeline_id=pipeline_id)
    if log is None:
        raise NotFound(f"pipeline {pipeline_id} has no build log (yet)")
    return log
