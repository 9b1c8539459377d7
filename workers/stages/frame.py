"""The stages' common frame: claim the stage, do its work, record the result, publish the next.

Each stage module (build, release, run) only says what its work is; which event comes next is
the stage table's (shared.stages), returned by `complete_stage`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import structlog
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel

from shipyard.shared import constants
from shipyard.shared.broker import publish
from shipyard.shared.db import session_scope
from shipyard.shared.exceptions import StageFailed
from shipyard.shared.logging import forget_secrets, redact
from shipyard.shared.metrics import instruments
from shipyard.shared.models import Pipeline, utcnow
from shipyard.shared.services import notifications, pipelines, stage_runs
from shipyard.shared.services import reconcile as reconciler
from shipyard.shared.services.stage_runs import ClaimOutcome
from shipyard.shared.stages import Stage
from shipyard.workers.context import WorkerContext

log = structlog.get_logger(__name__)
_Row = TypeVar("_Row", bound=SQLModel)


@dataclass(frozen=True)
class StageResult:
    """What a stage produced: its result id, and the event for the next stage (if any)."""

    result_id: str
    cache_hit: bool = False
    output: str | None = None
    artifact_id: str | None = None
    release_id: uuid.UUID | None = None
    deployment_id: uuid.UUID | None = None
    # Rows the stage finishes with its result, in the same transaction (after the fence).
    record: Callable[[Session], None] | None = None


StageWork = Callable[[WorkerContext, Pipeline], StageResult]


class FailureWithRecord(StageFailed):
    """A stage failure with rows to finish in the failure's own fenced transaction."""

    def __init__(self, failure: StageFailed, record: Callable[[Session], None]) -> None:
        super().__init__(failure.message, output=failure.output)
        self.record = record


def execute(
    context: WorkerContext, pipeline_id: uuid.UUID, stage: Stage, hostname: str, work: StageWork
) -> ClaimOutcome:
    """Run one stage once in effect: a duplicate message for a finished stage does nothing.

    Returns BUSY when another live worker runs the stage: the caller retries later, so that the
    stage is taken over if that worker turns out to be dead.
    """
    structlog.contextvars.bind_contextvars(pipeline_id=str(pipeline_id), stage=stage)
    try:
        with session_scope(context.db_url) as session:
            claim = stage_runs.claim_stage(
                session=session,
                pipeline_id=pipeline_id,
                stage=stage,
                hostname=hostname,
                stale_after=context.settings.stale_after_seconds,
            )
        if claim.outcome == ClaimOutcome.GAVE_UP and claim.pipeline is not None:
            instruments.record_if_finished(claim.pipeline)
        for event in claim.events:
            publish(context.celery, event)
        if claim.run is None:
            log.info(_NOT_CLAIMED[claim.outcome])
            return claim.outcome
        assert claim.pipeline is not None, "a claimed stage comes with its pipeline"
        log.info("stage.started", attempt=claim.run.attempt)
        try:
            _run_claimed(context, claim.pipeline, stage, claim.run.attempt, work)
        except stage_runs.StageSuperseded:
            # Another worker took the stage over while this one was silent: its result stands.
            log.warning("stage.superseded", attempt=claim.run.attempt)
        return claim.outcome
    finally:
        forget_secrets()
        structlog.contextvars.clear_contextvars()


_NOT_CLAIMED = {
    ClaimOutcome.WAITING: "stage.waiting",
    ClaimOutcome.BUSY: "stage.busy_elsewhere",
    ClaimOutcome.DONE: "stage.duplicate_ignored",
    ClaimOutcome.GAVE_UP: "stage.gave_up",
}


def _run_claimed(
    context: WorkerContext, pipeline: Pipeline, stage: Stage, attempt: int, work: StageWork
) -> None:
    pipeline_id = pipeline.id
    started = time.monotonic()
    with _heartbeat(context, pipeline_id, stage, attempt):
        try:
            result = work(context, pipeline)
        except StageFailed as exc:
            record = exc.record if isinstance(exc, FailureWithRecord) else None
            _record_failure(context, pipeline_id, stage, attempt, exc.message, exc.output, record)
            instruments.record_stage(stage=stage, result="failed", seconds=_since(started))
            return
        except OperationalError:
            raise  # the database is away: the task retries, the stage stays claimed
        except stage_runs.StageSuperseded:
            raise  # another attempt owns the stage now: nothing of this one is recorded
        except Exception as exc:  # a bug or an unexpected driver error: fail, never hang
            log.exception("stage.crashed")
            error = f"internal error ({type(exc).__name__})"
            _record_failure(context, pipeline_id, stage, attempt, error, None)
            instruments.record_stage(stage=stage, result="failed", seconds=_since(started))
            return
    _record_success(context, pipeline, stage, attempt, result)
    instruments.record_stage(stage=stage, result="succeeded", seconds=_since(started))


def _since(started: float) -> float:
    return time.monotonic() - started


@contextmanager
def _heartbeat(
    context: WorkerContext, pipeline_id: uuid.UUID, stage: Stage, attempt: int
) -> Iterator[None]:
    """Refresh the stage's heartbeat while the block runs, so nobody takes it over."""
    stop = threading.Event()
    bound = structlog.contextvars.get_contextvars()

    def beat() -> None:
        structlog.contextvars.bind_contextvars(**bound)
        while not stop.wait(context.settings.heartbeat_seconds):
            try:
                with session_scope(context.db_url) as session:
                    stage_runs.heartbeat(
                        session=session, pipeline_id=pipeline_id, stage=stage, attempt=attempt
                    )
            except stage_runs.StageSuperseded:
                log.warning("stage.superseded_while_running", attempt=attempt)
                return
            except Exception:  # a missed beat is retried; only a long silence matters
                log.warning("stage.heartbeat_failed")

    thread = threading.Thread(target=beat, name=f"heartbeat-{stage}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def _record_success(
    context: WorkerContext, pipeline: Pipeline, stage: Stage, attempt: int, result: StageResult
) -> None:
    """One transaction: the fenced result, what the stage made, its rows, the next stage queued
    (`pipeline` is the row the claim returned: nothing is read again)."""
    # Redacted as a failure's output is: a release command that prints a secret and succeeds
    # must not keep it in the store or show it through the API.
    output = redact(result.output) if result.output is not None else None
    with session_scope(context.db_url) as session:
        events = stage_runs.complete_stage(
            session=session,
            pipeline=pipeline,
            stage=stage,
            result_id=result.result_id,
            cache_hit=result.cache_hit,
            output=output,
            attempt=attempt,
            artifact_id=result.artifact_id,
            release_id=result.release_id,
            deployment_id=result.deployment_id,
        )
        if result.record is not None:
            result.record(session)
        notices = notifications.pipeline_notices(session=session, pipeline=pipeline, stage=stage)
    log.info("stage.succeeded", result_id=result.result_id, cache_hit=result.cache_hit)
    # Counted once the stage's rows are committed: a rolled-back result counts nothing.
    if stage == Stage.BUILD:
        instruments.record_build(cache_hit=result.cache_hit)
    instruments.record_if_finished(pipeline)
    # Published only after the stage's rows are committed (see docs/reliability.md).
    for event in [*events, *notices]:
        publish(context.celery, event)


def _record_failure(
    context: WorkerContext,
    pipeline_id: uuid.UUID,
    stage: Stage,
    attempt: int,
    error: str,
    output: str | None,
    record: Callable[[Session], None] | None = None,
) -> None:
    error = redact(error)
    output = redact(output) if output is not None else None
    with session_scope(context.db_url) as session:
        pipeline = pipelines.get_pipeline(session=session, pipeline_id=pipeline_id)
        woken = stage_runs.fail_stage(
            session=session,
            pipeline=pipeline,
            stage=stage,
            error=error,
            output=output,
            attempt=attempt,
        )
        if record is not None:
            record(session)
        notices = notifications.pipeline_notices(session=session, pipeline=pipeline, stage=stage)
    log.warning("stage.failed", error=error)
    instruments.record_if_finished(pipeline)
    for event in [*woken, *notices]:
        publish(context.celery, event)


def get_row(session: Session, model: type[_Row], key: object) -> _Row:
    """The row `key` of `model`; a row deleted under a running stage fails the stage clearly."""
    row = session.get(model, key)
    if row is None:
        raise StageFailed(f"{model.__name__} {key} no longer exists")
    return row


def reconcile(context: WorkerContext) -> None:
    """Find stranded stages and publish them again (see shared.services.reconcile)."""
    settings = context.settings
    now = utcnow()
    with session_scope(context.db_url) as session:
        events = reconciler.stranded_stages(
            session=session,
            now=now,
            stale_after=settings.stale_after_seconds,
            queued_after=settings.queued_redeliver_seconds,
        )
        notices = notifications.stranded_notifications(
            session=session,
            now=now,
            after=constants.NOTIFY_BACKOFF_MAX_SECONDS + 2 * settings.notify_timeout_seconds,
        )
    for event in events:
        log.warning(
            "reconcile.republished", pipeline_id=str(event.pipeline_id), event_type=event.type
        )
        publish(context.celery, event)
    for notice in notices:
        log.warning(
            "reconcile.notification_republished", notification_id=str(notice.notification_id)
        )
        publish(context.celery, notice)
