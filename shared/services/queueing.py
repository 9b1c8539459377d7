"""Deploys queue, they don't collide: one pipeline per environment past its gate at a time.

A pipeline's gate is its first stage that touches the environment (release, or run for a
rollback). It passes only when no older pipeline of the environment is still queued or running;
otherwise the stage waits, and the pipeline that finishes ahead of it wakes it. Both sides run
under the environment's row lock, so a wake-up cannot be lost between check and wait.
"""

from __future__ import annotations

import uuid

from sqlalchemy import BindParameter, ColumnElement, Table, and_, bindparam, or_
from sqlmodel import Session, col, select

from shipyard.shared import stages
from shipyard.shared.db import core_connection, fixed_limit
from shipyard.shared.events import StageEvent
from shipyard.shared.models import (
    Environment,
    Pipeline,
    PipelineStatus,
    StageRun,
    StageStatus,
    utcnow,
)
from shipyard.shared.services.releases import lock_environment

_ACTIVE = (PipelineStatus.QUEUED, PipelineStatus.RUNNING)


def active() -> ColumnElement[bool]:
    """`pipeline.status` is queued or running, with the statuses written into the SQL.

    As literals, the planner knows how few rows they match (and that they match the status
    indexes) even in a prepared statement's generic plan; as parameters it would read all of an
    environment's pipelines, a cost that grows with its history.
    """
    return col(Pipeline.status).in_(_active_statuses())


def _active_statuses() -> BindParameter[list[str]]:
    # One name for every use: two of these in one statement merge into one parameter, which is
    # right only because its value never changes.
    return bindparam("active_statuses", list(_ACTIVE), expanding=True, literal_execute=True)


def stage_event(session: Session, pipeline: Pipeline, stage: stages.Stage) -> StageEvent:
    """The event that starts `stage` of `pipeline`, from the pipeline's row; a run stage's
    names the run host its environment is placed on, read now (its queue is that host's)."""
    run_host = None
    if stage == stages.Stage.RUN:
        run_host = session.exec(
            select(Environment.run_host).where(Environment.id == pipeline.environment_id)
        ).one()
    return stages.stage_event(
        stage,
        pipeline.id,
        artifact_id=pipeline.artifact_id,
        release_id=pipeline.release_id,
        run_host=run_host,
    )


_PIPELINES: Table = Pipeline.__table__  # type: ignore[attr-defined]
# Built once: every gate asks it. An older pipeline of the environment still queued or running.
_OLDER_ACTIVE = (
    select(_PIPELINES.c.id)
    .where(
        _PIPELINES.c.environment_id == bindparam("p_environment"),
        _PIPELINES.c.status.in_(_active_statuses()),
        or_(
            _PIPELINES.c.created_at < bindparam("p_created"),
            and_(
                _PIPELINES.c.created_at == bindparam("p_created"),
                _PIPELINES.c.id < bindparam("p_pipeline"),
            ),
        ),
    )
    .limit(fixed_limit(1))
)


def _older_active(session: Session, pipeline: Pipeline) -> uuid.UUID | None:
    params = {
        "p_environment": pipeline.environment_id,
        "p_created": pipeline.created_at,
        "p_pipeline": pipeline.id,
    }
    older: uuid.UUID | None = core_connection(session).execute(_OLDER_ACTIVE, params).scalar()
    return older


def wait_if_behind(*, session: Session, pipeline: Pipeline, stage: stages.Stage) -> bool:
    """At the gate: mark the stage waiting (True) if an older pipeline is still ahead of it."""
    if stage != stages.gate_stage(pipeline.kind):
        return False
    lock_environment(session=session, environment_id=pipeline.environment_id)
    if _older_active(session, pipeline) is None:
        return False
    run = session.exec(
        select(StageRun).where(StageRun.pipeline_id == pipeline.id, StageRun.name == stage)
    ).one()
    if run.status in (StageStatus.QUEUED, StageStatus.WAITING):
        run.status = StageStatus.WAITING
        session.add(run)
        session.flush()
    return True


def wake_next(*, session: Session, environment_id: uuid.UUID) -> StageEvent | None:
    """After a pipeline finished: queue the oldest waiting one if nothing older is ahead of it."""
    lock_environment(session=session, environment_id=environment_id)
    row = session.exec(
        select(Pipeline, StageRun)
        .join(StageRun, col(StageRun.pipeline_id) == col(Pipeline.id))
        .where(
            Pipeline.environment_id == environment_id,
            active(),  # a waiting pipeline is active: few rows to read, not the history
            StageRun.status == StageStatus.WAITING,
        )
        .order_by(col(Pipeline.created_at), col(Pipeline.id))
        .limit(fixed_limit(1))
    ).first()
    if row is None:
        return None
    pipeline, run = row
    if _older_active(session, pipeline) is not None:
        return None
    run.status = StageStatus.QUEUED
    run.queued_at = utcnow()
    session.add(run)
    session.flush()
    return stage_event(session, pipeline, stages.Stage(run.name))
