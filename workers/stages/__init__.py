"""The stages' common frame: claim the stage, do its work, record the result, publish the next.

Each stage module (build, release, run) only says what its work is.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel

from shared.broker import publish
from shared.db import session_scope
from shared.events import StageEvent
from shared.exceptions import StageFailed
from shared.logging import forget_secrets, redact
from shared.models import Pipeline
from shared.services import pipelines
from workers.context import WorkerContext

log = structlog.get_logger(__name__)
_Row = TypeVar("_Row", bound=SQLModel)


@dataclass(frozen=True)
class StageResult:
    """What a stage produced: its result id, and the event for the next stage (if any)."""

    result_id: str
    next_event: StageEvent | None = None
    cache_hit: bool = False
    output: str | None = None
    artifact_id: str | None = None
    release_id: uuid.UUID | None = None
    deployment_id: uuid.UUID | None = None


StageWork = Callable[[WorkerContext, Pipeline], StageResult]


def execute(
    context: WorkerContext, pipeline_id: uuid.UUID, stage: str, hostname: str, work: StageWork
) -> None:
    """Run one stage once in effect: a duplicate message for a finished stage does nothing."""
    structlog.contextvars.bind_contextvars(pipeline_id=str(pipeline_id), stage=stage)
    try:
        with session_scope(context.db_url) as session:
            claimed = pipelines.claim_stage(
                session=session, pipeline_id=pipeline_id, stage=stage, hostname=hostname
            )
            pipeline = pipelines.get_pipeline(session=session, pipeline_id=pipeline_id)
        if claimed is None:
            status = _stage_status(context, pipeline_id, stage)
            event = "stage.waiting" if status == "waiting" else "stage.duplicate_ignored"
            log.info(event, status=status)
            return
        log.info("stage.started", attempt=claimed.attempt)
        try:
            result = work(context, pipeline)
        except StageFailed as exc:
            _record_failure(context, pipeline_id, stage, exc.message, exc.output)
            return
        except OperationalError:
            raise  # the database is away: the task retries, the stage stays claimed
        except Exception as exc:  # a bug or an unexpected driver error: fail, never hang
            log.exception("stage.crashed")
            error = f"internal error ({type(exc).__name__})"
            _record_failure(context, pipeline_id, stage, error, None)
            return
        _record_success(context, pipeline_id, stage, result)
    finally:
        forget_secrets()
        structlog.contextvars.clear_contextvars()


def _record_success(
    context: WorkerContext, pipeline_id: uuid.UUID, stage: str, result: StageResult
) -> None:
    with session_scope(context.db_url) as session:
        pipeline = pipelines.get_pipeline(session=session, pipeline_id=pipeline_id)
        pipeline.artifact_id = result.artifact_id or pipeline.artifact_id
        pipeline.release_id = result.release_id or pipeline.release_id
        pipeline.deployment_id = result.deployment_id or pipeline.deployment_id
        woken = pipelines.complete_stage(
            session=session,
            pipeline=pipeline,
            stage=stage,
            result_id=result.result_id,
            cache_hit=result.cache_hit,
            output=result.output,
        )
    log.info("stage.succeeded", result_id=result.result_id, cache_hit=result.cache_hit)
    # Published only after the stage's rows are committed (see docs/reliability.md).
    events = [result.next_event] if result.next_event is not None else []
    for event in events + woken:
        publish(context.celery, event)


def _record_failure(
    context: WorkerContext, pipeline_id: uuid.UUID, stage: str, error: str, output: str | None
) -> None:
    error = redact(error)
    output = redact(output) if output is not None else None
    with session_scope(context.db_url) as session:
        pipeline = pipelines.get_pipeline(session=session, pipeline_id=pipeline_id)
        woken = pipelines.fail_stage(
            session=session, pipeline=pipeline, stage=stage, error=error, output=output
        )
    log.warning("stage.failed", error=error)
    for event in woken:
        publish(context.celery, event)


def _stage_status(context: WorkerContext, pipeline_id: uuid.UUID, stage: str) -> str:
    with session_scope(context.db_url) as session:
        runs = pipelines.stages_of(session=session, pipeline_id=pipeline_id)
    return next((run.status for run in runs if run.name == stage), "unknown")


def get_row(session: Session, model: type[_Row], key: object) -> _Row:
    """The row `key` of `model`; a row deleted under a running stage fails the stage clearly."""
    row = session.get(model, key)
    if row is None:
        raise StageFailed(f"{model.__name__} {key} no longer exists")
    return row
