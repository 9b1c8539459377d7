"""Pipelines: created with one stage run per stage, launched, and shown (the stage runs'
lifecycle, from claim to completion, is `stage_runs`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy
from sqlalchemy import Table
from sqlmodel import Session, col, select

from shipyard.shared.db import core_connection
from shipyard.shared.events import Event, StageEvent
from shipyard.shared.exceptions import NotFound, ServiceUnavailable
from shipyard.shared.models import (
    App,
    ConfigVersion,
    Deployment,
    Environment,
    Pipeline,
    Release,
    StageRun,
    StageStatus,
    utcnow,
)
from shipyard.shared.schemas import PipelinePublic, StagePublic
from shipyard.shared.services import deployments, queueing, rollouts, stage_runs
from shipyard.shared.stages import STAGES_BY_KIND, PipelineKind, Stage, first_stage


def create_pipeline(
    *,
    session: Session,
    app: App,
    environment: Environment,
    kind: PipelineKind,
    trigger: str,
    ref: str | None = None,
    artifact_id: str | None = None,
    release_id: uuid.UUID | None = None,
    source_release_id: uuid.UUID | None = None,
    requested_by: str | None = None,
    process_type: str | None = None,
    rollout: dict[str, Any] | None = None,
) -> Pipeline:
    """A queued pipeline with one stage run per stage, the first one queued; `trigger` is how
    it was asked for (cli, dashboard, api, webhook, schedule, …), `requested_by` by whom (the
    token's name, the webhook's or schedule's), `rollout` how its release goes live (a plan
    from `rollouts.resolve_plan`; None: at once)."""
    pipeline = Pipeline(
        app_id=app.id,
        environment_id=environment.id,
        kind=kind,
        trigger=trigger,
        requested_by=requested_by,
        ref=ref,
        artifact_id=artifact_id,
        release_id=release_id,
        source_release_id=source_release_id,
        process_type=process_type,
        rollout=rollout,
    )
    session.add(pipeline)  # its id is made here: one flush writes it and its stage runs
    for position, name in enumerate(STAGES_BY_KIND[kind]):
        first = position == 0
        session.add(
            StageRun(
                pipeline_id=pipeline.id,
                name=name,
                position=position,
                status=StageStatus.QUEUED if first else StageStatus.PENDING,
                queued_at=utcnow() if first else None,
            )
        )
    session.flush()
    return pipeline


def create_config_pipeline(
    *,
    session: Session,
    app: App,
    environment: Environment,
    config: ConfigVersion,
    trigger: str,
    requested_by: str | None = None,
) -> Pipeline | None:
    """A release → run pipeline of the live artifact with `config`.

    None when nothing is live, when the live release already runs `config`, or when a config
    pipeline is already on its way (it will release the newest config when it gets there).
    """
    live = deployments.live_deployment(session=session, environment_id=environment.id)
    if live is None:
        return None
    release = session.get(Release, live.release_id)
    assert release is not None
    if release.config_version_id == config.id:
        return None
    # A config pipeline that has not yet made its release will release the newest config.
    pending = session.exec(
        select(Pipeline.id)
        .join(StageRun, col(StageRun.pipeline_id) == col(Pipeline.id))
        .where(
            Pipeline.environment_id == environment.id,
            Pipeline.kind == PipelineKind.CONFIG,
            queueing.active(),
            StageRun.name == Stage.RELEASE,
            col(StageRun.status).in_(
                [StageStatus.PENDING, StageStatus.QUEUED, StageStatus.WAITING]
            ),
        )
    ).first()
    if pending is not None:
        return None
    return create_pipeline(
        session=session,
        app=app,
        environment=environment,
        kind=PipelineKind.CONFIG,
        trigger=trigger,
        requested_by=requested_by,
        artifact_id=release.artifact_id,
        rollout=rollouts.resolve_plan(
            environment=environment, kind=PipelineKind.CONFIG, request=None
        ),
    )


def start(*, session: Session, pipeline: Pipeline, publish: Callable[[Event], None]) -> None:
    """Publish the committed pipeline's first event; if the broker is away, fail it and say so."""
    event = first_event(session, pipeline)
    session.commit()  # the read that made it ends here: nothing is held while the broker answers
    try:
        publish(event)
    except Exception as exc:  # kombu raises several connection error types
        stage_runs.fail_pipeline(
            session=session,
            pipeline=pipeline,
            error=f"the broker could not be reached ({type(exc).__name__}); start it again",
        )
        session.commit()
        raise ServiceUnavailable(
            f"the broker is unavailable; pipeline {pipeline.id} was recorded as failed, "
            "try again shortly"
        ) from exc


def launch(
    *, session: Session, pipeline: Pipeline, publish: Callable[[Event], None]
) -> PipelinePublic:
    """How every route starts a pipeline it made: commit it, publish its first event (the
    broker's absence fails it, and says so), and answer with it."""
    session.commit()
    start(session=session, pipeline=pipeline, publish=publish)
    return pipeline_public(session=session, pipeline=pipeline)


def first_event(session: Session, pipeline: Pipeline) -> StageEvent:
    """The event that starts `pipeline`'s first stage."""
    return queueing.stage_event(session, pipeline, first_stage(pipeline.kind))


def get_pipeline(*, session: Session, pipeline_id: uuid.UUID) -> Pipeline:
    """The pipeline, or NotFound."""
    pipeline = session.get(Pipeline, pipeline_id)
    if pipeline is None:
        raise NotFound(f"pipeline {pipeline_id} not found")
    return pipeline


def pipeline_public(*, session: Session, pipeline: Pipeline) -> PipelinePublic:
    """The API view of a pipeline with its stages."""
    app_name, environment_name = _names(session, pipeline)
    stages = _stages_public(session, pipeline.id)
    return PipelinePublic(
        **pipeline.model_dump(exclude={"app_id", "environment_id"}),
        app=app_name,
        environment=environment_name,
        stages=stages,
        # Only a pipeline with a plan has a rollout to read: the others make no statement more.
        rollout_record=_rollout_record(session, pipeline.id) if pipeline.rollout else None,
    )


_DEPLOYMENTS: Table = Deployment.__table__  # type: ignore[attr-defined]
_ROLLOUT_RECORD = sqlalchemy.select(_DEPLOYMENTS.c.rollout).where(
    _DEPLOYMENTS.c.pipeline_id == sqlalchemy.bindparam("p_pipeline")
)


def _rollout_record(session: Session, pipeline_id: uuid.UUID) -> dict[str, Any] | None:
    """The rollout record of the pipeline's deployment (None before its run stage made one)."""
    stored = core_connection(session).execute(_ROLLOUT_RECORD, {"p_pipeline": pipeline_id}).scalar()
    return stored if isinstance(stored, dict) else None


# The stage run's columns a StagePublic shows, read as rows: validating rows is about half the
# CPU of loading StageRun entities first (docs/benchmarks.md, issue 28).
_STAGE_RUNS: Table = StageRun.__table__  # type: ignore[attr-defined]
_STAGES_PUBLIC = sqlalchemy.select(
    *(_STAGE_RUNS.c[name] for name in StagePublic.model_fields)
).order_by(_STAGE_RUNS.c.position)


def _stages_public(session: Session, pipeline_id: uuid.UUID) -> list[StagePublic]:
    """The API view of a pipeline's stage runs, in order."""
    rows = core_connection(session).execute(
        _STAGES_PUBLIC.where(_STAGE_RUNS.c.pipeline_id == pipeline_id)
    )
    return [StagePublic.model_validate(row, from_attributes=True) for row in rows]


def _names(session: Session, pipeline: Pipeline) -> tuple[str, str]:
    """The names of the pipeline's app and environment: from the session when it holds both
    (the route that created the pipeline loaded them), else in one statement of two columns,
    not two ORM loads of whole rows (a third of a GET's SQL CPU; docs/benchmarks.md, issue 28)."""
    app = session.identity_map.get(session.identity_key(App, pipeline.app_id))
    environment = session.identity_map.get(
        session.identity_key(Environment, pipeline.environment_id)
    )
    if app is not None and environment is not None:
        return app.name, environment.name
    query = (
        select(col(App.name), col(Environment.name))
        .join(Environment, col(Environment.app_id) == col(App.id))
        .where(col(Environment.id) == pipeline.environment_id, col(App.id) == pipeline.app_id)
    )
    app_name, environment_name = session.exec(query).one()
    return app_name, environment_name
