"""Pipelines: start one, follow it, read its build log."""

from __future__ import annotations

import uuid
from typing import Annotated

import redis
from fastapi import APIRouter, Query, status

from shipyard.api.auth import PrincipalDep, deploy_scoped
from shipyard.api.deps import (
    BrokerRedisDep,
    ClientDep,
    PublisherDep,
    SessionDep,
    SettingsDep,
    StoreDep,
    in_one_thread,
    read_in_one_thread,
)
from shipyard.api.responses import ModelResponse
from shipyard.shared import build_stream
from shipyard.shared.exceptions import NotFound, ServiceUnavailable
from shipyard.shared.schemas import (
    BuildLogLinesPublic,
    BuildLogPublic,
    PipelineCreate,
    PipelinePublic,
)
from shipyard.shared.services import actions, builds, pipelines

router = APIRouter(tags=["pipelines"])


@router.post(
    "/apps/{app}/pipelines", status_code=status.HTTP_202_ACCEPTED, response_model=PipelinePublic
)
@deploy_scoped
async def create_pipeline(
    app: str,
    data: PipelineCreate,
    session: SessionDep,
    publish: PublisherDep,
    principal: PrincipalDep,
    client: ClientDep,
) -> ModelResponse:
    """Build `ref`, release it and run it in `environment`; answers at once with the pipeline.
    It goes live as `rollout` asks (canary steps, a watch) over the environment's default."""
    principal.require_deploy(data.environment)

    def deploy() -> PipelinePublic:
        pipeline = actions.deploy(
            session=session,
            app=app,
            environment=data.environment,
            ref=data.ref,
            # The CLI says so in a header; a `trigger` named in the body is kept (a caller's own).
            trigger=client if data.trigger == "api" else data.trigger,
            requested_by=principal.name,
            rollout=data.rollout,
        )
        return pipelines.launch(session=session, pipeline=pipeline, publish=publish)

    view = await in_one_thread(session, deploy)
    return ModelResponse(view, status_code=status.HTTP_202_ACCEPTED)


@router.get("/pipelines/{pipeline_id}", response_model=PipelinePublic)
async def get_pipeline(pipeline_id: uuid.UUID, store: StoreDep) -> ModelResponse:
    """A pipeline with the status, worker, timing, result and error of each stage."""
    view = await read_in_one_thread(
        store,
        lambda connection: pipelines.pipeline_view(connection=connection, pipeline_id=pipeline_id),
    )
    return ModelResponse(view)


@router.get("/pipelines/{pipeline_id}/log")
def get_build_log(pipeline_id: uuid.UUID, session: SessionDep) -> BuildLogPublic:
    """The build log of a pipeline's build stage."""
    pipelines.get_pipeline(session=session, pipeline_id=pipeline_id)
    log = builds.build_log(session=session, pipeline_id=pipeline_id)
    if log is None:
        raise NotFound(f"pipeline {pipeline_id} has no build log (yet)")
    return log


@router.get("/pipelines/{pipeline_id}/log/live")
def get_live_build_log(
    pipeline_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    broker: BrokerRedisDep,
    after: Annotated[str, Query(pattern=r"^[0-9]{1,20}-[0-9]{1,20}$")] = build_stream.START,
) -> BuildLogLinesPublic:
    """The build log's lines as they are written, after position `after`; ask again from the
    returned position. Empty once the live view expired: the stored log is at `…/log`."""
    pipelines.get_pipeline(session=session, pipeline_id=pipeline_id)
    if broker is None:
        return BuildLogLinesPublic(lines=[], after=after)
    key = build_stream.stream_key(settings.broker_namespace, pipeline_id)
    try:
        lines, position = build_stream.read_after(broker, key, after)
    except redis.RedisError as exc:
        raise ServiceUnavailable("the broker is unavailable; try again shortly") from exc
    return BuildLogLinesPublic(lines=lines, after=position)
