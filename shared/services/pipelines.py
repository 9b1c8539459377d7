"""Pipelines: created with one stage run per stage, launched, and shown (the stage runs'
lifecycle, from claim to completion, is `stage_runs`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy
from pydantic_core import PydanticUndefined
from sqlalchemy import Connection, Table
from sqlalchemy.orm import make_transient_to_detached
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

_PIPELINES: Table = Pipeline.__table__  # type: ignore[attr-defined]
_APPS: Table = App.__table__  # type: ignore[attr-defined]
_ENVIRONMENTS: Table = Environment.__table__  # type: ignore[attr-defined]
_DEPLOYMENTS: Table = Deployment.__table__  # type: ignore[attr-defined]
_STAGE_RUNS: Table = StageRun.__table__  # type: ignore[attr-defined]
_INSERT_PIPELINE = sqlalchemy.insert(_PIPELINES)
_INSERT_STAGE_RUN = sqlalchemy.insert(_STAGE_RUNS)
# A new stage run's columns as StageRun's defaults make them (those without one are set each time).
_NEW_STAGE_RUN = {
    name: field.default
    for name, field in StageRun.model_fields.items()
    if field.default_factory is None and field.default is not PydanticUndefined
}


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
    # Written as two Core INSERTs (the pipeline, then its stage runs in one batch), the pipeline
    # then taken into the session as a row it had loaded: the ORM's flush of the pipeline and
    # its stage runs was a fifth of a POST's CPU (docs/benchmarks.md, issue 28).
    connection = core_connection(session)
    connection.execute(_INSERT_PIPELINE, {c.name: getattr(pipeline, c.name) for c in _PIPELINES.c})
    connection.execute(
        _INSERT_STAGE_RUN,
        [
            {
                **_NEW_STAGE_RUN,
                "id": uuid.uuid4(),
                "pipeline_id": pipeline.id,
                "name": name,
                "position": position,
                "status": StageStatus.QUEUED if position == 0 else StageStatus.PENDING,
                "queued_at": utcnow() if position == 0 else None,
            }
            for position, name in enumerate(STAGES_BY_KIND[kind])
        ],
    )
    make_transient_to_detached(pipeline)
    session.add(pipeline)
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
    view = pipeline_public(session=session, pipeline=pipeline)
    # The read-back's transaction ends with a COMMIT, not with the close's ROLLBACK: psycopg
    # forgets a connection's prepared statements at each ROLLBACK (docs/benchmarks.md, issue 28).
    session.commit()
    return view


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
    """The API view of a pipeline with its stages, as the store holds it (what the session
    holds pending is written first)."""
    return pipeline_view(connection=core_connection(session), pipeline_id=pipeline.id)


# A pipeline's view in one statement, one row per stage run in order: the columns
# PipelinePublic shows, its app's and environment's names, its deployment's rollout record (a
# deployment has one pipeline at most), and each stage run's columns that StagePublic shows.
# Loading the Pipeline entity, then the names, then the stage runs took three statements and
# well over twice the CPU (docs/benchmarks.md, issue 28).
_STAGE_PREFIX = "stage_"
_PIPELINE_VIEW = (
    sqlalchemy.select(
        *(column for column in _PIPELINES.c if column.name in PipelinePublic.model_fields),
        _APPS.c.name.label("app"),
        _ENVIRONMENTS.c.name.label("environment"),
        _DEPLOYMENTS.c.rollout.label("rollout_record"),
        *(_STAGE_RUNS.c[name].label(_STAGE_PREFIX + name) for name in StagePublic.model_fields),
    )
    .join_from(_PIPELINES, _APPS, _APPS.c.id == _PIPELINES.c.app_id)
    .join(_ENVIRONMENTS, _ENVIRONMENTS.c.id == _PIPELINES.c.environment_id)
    .outerjoin(_DEPLOYMENTS, _DEPLOYMENTS.c.pipeline_id == _PIPELINES.c.id)
    .outerjoin(_STAGE_RUNS, _STAGE_RUNS.c.pipeline_id == _PIPELINES.c.id)
    .where(_PIPELINES.c.id == sqlalchemy.bindparam("p_pipeline"))
    .order_by(_STAGE_RUNS.c.position)
)
_PIPELINE_FIELDS = [
    name for name in _PIPELINE_VIEW.selected_columns.keys() if not name.startswith(_STAGE_PREFIX)
]


def pipeline_view(*, connection: Connection, pipeline_id: uuid.UUID) -> PipelinePublic:
    """The API view of pipeline `pipeline_id` with its stages, or NotFound.

    Read on a Core connection, not through a session: a GET of one pipeline is one statement,
    and a session's transaction bookkeeping was a tenth of its CPU (docs/benchmarks.md).
    """
    rows = connection.execute(_PIPELINE_VIEW, {"p_pipeline": pipeline_id}).all()
    if not rows:
        raise NotFound(f"pipeline {pipeline_id} not found")
    first = rows[0]._mapping
    fields: dict[str, Any] = {name: first[name] for name in _PIPELINE_FIELDS}
    # As pipeline_public shows it: a record only for a pipeline with a plan, and one that parses.
    record = fields["rollout_record"]
    fields["rollout_record"] = record if fields["rollout"] and isinstance(record, dict) else None
    fields["stages"] = [
        StagePublic.model_validate(
            {name: row._mapping[_STAGE_PREFIX + name] for name in StagePublic.model_fields}
        )
        for row in rows
        if row._mapping[_STAGE_PREFIX + "name"] is not None
    ]
    return PipelinePublic.model_validate(fields)
