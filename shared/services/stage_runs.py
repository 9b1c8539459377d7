"""The stage run's lifecycle: claimed by one worker, fenced while it runs, then completed or
failed; each transition conditional on the attempt that holds the stage."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from functools import cache

from sqlalchemy import Table, Update, and_, bindparam, or_, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from shipyard.shared import constants
from shipyard.shared.db import core_connection, sync_loaded
from shipyard.shared.events import StageEvent
from shipyard.shared.exceptions import NotFound
from shipyard.shared.models import Pipeline, PipelineStatus, StageRun, StageStatus, utcnow
from shipyard.shared.services import queueing
from shipyard.shared.stages import Stage


def stages_of(*, session: Session, pipeline_id: uuid.UUID) -> list[StageRun]:
    """The stage runs of a pipeline, in order."""
    query = select(StageRun).where(StageRun.pipeline_id == pipeline_id)
    return list(session.exec(query.order_by(col(StageRun.position))))


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"  # this worker runs the stage now
    WAITING = "waiting"  # an older pipeline of the environment is ahead: woken later
    BUSY = "busy"  # another worker runs it and is alive (fresh heartbeat): try again later
    DONE = "done"  # finished, failed or skipped already: a duplicate message
    GAVE_UP = "gave_up"  # its workers died too often: the stage is failed now


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    run: StageRun | None = None  # the claimed row as it is now: a copy no session tracks
    events: list[StageEvent] = field(default_factory=list)  # to publish after commit
    pipeline: Pipeline | None = None  # the claimed stage's pipeline, as the claim left it


class StageSuperseded(Exception):
    """This worker's attempt was taken over by another; its result must not be recorded."""


# The stage hot path's statements, built once on the tables: every stage runs them, and a
# prebuilt Core statement costs a third of the CPU of one the ORM builds on each call.
_RUNS: Table = StageRun.__table__  # type: ignore[attr-defined]
_PIPELINES: Table = Pipeline.__table__  # type: ignore[attr-defined]
_THIS_STAGE = (_RUNS.c.pipeline_id == bindparam("p_pipeline"), _RUNS.c.name == bindparam("p_stage"))
# The stage, while attempt `p_attempt` holds it.
_HELD = (
    *_THIS_STAGE,
    _RUNS.c.status == StageStatus.RUNNING,
    _RUNS.c.attempt == bindparam("p_attempt"),
)
# One statement claims and returns the row (RETURNING): a queued stage, or a running one whose
# worker stopped heartbeating. The guard that makes a duplicate message do nothing.
_CLAIM = (
    update(_RUNS)
    .where(
        *_THIS_STAGE,
        or_(
            _RUNS.c.status == StageStatus.QUEUED,
            and_(
                _RUNS.c.status == StageStatus.RUNNING,
                or_(_RUNS.c.heartbeat_at.is_(None), _RUNS.c.heartbeat_at < bindparam("p_stale")),
            ),
        ),
    )
    .values(
        status=StageStatus.RUNNING,
        attempt=_RUNS.c.attempt + 1,
        started_at=bindparam("p_now"),
        heartbeat_at=bindparam("p_now"),
        hostname=bindparam("p_hostname"),
        error=None,
    )
    .returning(*_RUNS.c)
)
_STATUS_OF = _RUNS.select().with_only_columns(_RUNS.c.status).where(*_THIS_STAGE)
_START_PIPELINE = (
    update(_PIPELINES)
    .where(_PIPELINES.c.id == bindparam("p_pipeline"), _PIPELINES.c.status == PipelineStatus.QUEUED)
    .values(status=PipelineStatus.RUNNING)
)
_FENCE = update(_RUNS).where(*_HELD).values(heartbeat_at=bindparam("p_now"))
# The fence and the result in one statement: only the attempt holding the stage records it.
_SUCCEEDED = {
    held: update(_RUNS)
    .where(*where)
    .values(
        status=StageStatus.SUCCEEDED,
        finished_at=bindparam("p_now"),
        result_id=bindparam("p_result"),
        cache_hit=bindparam("p_cache_hit"),
        output=bindparam("p_output"),
    )
    .returning(_RUNS.c.position)
    for held, where in ((True, _HELD), (False, _THIS_STAGE))
}
_QUEUE_NEXT = (
    update(_RUNS)
    .where(_RUNS.c.pipeline_id == bindparam("p_pipeline"), _RUNS.c.position == bindparam("p_next"))
    .values(status=StageStatus.QUEUED, queued_at=bindparam("p_now"))
    .returning(_RUNS.c.name)
)


@cache
def _record_on_pipeline(columns: tuple[str, ...]) -> Update:
    """UPDATE pipeline SET these columns (from `p_<column>`), one statement per set of columns."""
    return (
        update(_PIPELINES)
        .where(_PIPELINES.c.id == bindparam("p_pipeline"))
        .values({name: bindparam(f"p_{name}") for name in columns})
    )


def claim_stage(
    *, session: Session, pipeline_id: uuid.UUID, stage: Stage, hostname: str, stale_after: float
) -> Claim:
    """Take a stage for this worker, if it is queued or its last worker stopped heartbeating.

    The conditional UPDATE is the guard that makes a duplicate message do nothing, whichever
    worker it reaches: only one claim of a queued stage, or of a stale running one, succeeds.
    """
    pipeline = session.get(Pipeline, pipeline_id)
    if pipeline is None:
        raise NotFound(f"pipeline {pipeline_id} not found")
    if pipeline.status in (PipelineStatus.SUCCEEDED, PipelineStatus.FAILED):
        return Claim(ClaimOutcome.DONE)
    if queueing.wait_if_behind(session=session, pipeline=pipeline, stage=stage):
        return Claim(ClaimOutcome.WAITING)
    now = utcnow()
    connection = core_connection(session)
    row = connection.execute(
        _CLAIM,
        {
            "p_pipeline": pipeline_id,
            "p_stage": stage,
            "p_stale": now - timedelta(seconds=stale_after),
            "p_now": now,
            "p_hostname": hostname,
        },
    ).one_or_none()
    if row is None:
        status = connection.execute(
            _STATUS_OF, {"p_pipeline": pipeline_id, "p_stage": stage}
        ).scalar_one()
        return Claim(ClaimOutcome.BUSY if status == StageStatus.RUNNING else ClaimOutcome.DONE)
    claimed = dict(row._mapping)
    sync_loaded(session, StageRun, claimed["id"], claimed)  # a copy this session holds, if any
    run = StageRun(**claimed)  # the claimed row as it is now (not tracked by the session)
    if run.attempt > constants.MAX_STAGE_ATTEMPTS:
        # Every worker that took this stage died under it (OOM killer, hard time limit, …):
        # failing it frees the environment's queue instead of retrying forever.
        woken = fail_stage(
            session=session,
            pipeline=pipeline,
            stage=stage,
            error=f"its worker died {run.attempt - 1} times (out of memory or over a time limit?)",
            attempt=run.attempt,
        )
        return Claim(ClaimOutcome.GAVE_UP, events=woken, pipeline=pipeline)
    if pipeline.status == PipelineStatus.QUEUED:  # its first stage: the pipeline starts now
        connection.execute(_START_PIPELINE, {"p_pipeline": pipeline_id})
        set_committed_value(pipeline, "status", PipelineStatus.RUNNING)
    return Claim(ClaimOutcome.CLAIMED, run, pipeline=pipeline)


def heartbeat(*, session: Session, pipeline_id: uuid.UUID, stage: Stage, attempt: int) -> None:
    """Record that the worker running attempt `attempt` of this stage is alive."""
    _fence(session, pipeline_id, stage, attempt)


def _fence(session: Session, pipeline_id: uuid.UUID, stage: Stage, attempt: int | None) -> None:
    """Refresh and lock the stage row if `attempt` still holds it; else StageSuperseded.

    The row lock (or SQLite's immediate transaction) keeps a takeover from slipping in
    between this check and the writes that follow it in the same transaction.
    """
    if attempt is None:
        return
    params = {"p_pipeline": pipeline_id, "p_stage": stage, "p_attempt": attempt, "p_now": utcnow()}
    if core_connection(session).execute(_FENCE, params).rowcount == 0:
        raise StageSuperseded(f"attempt {attempt} of {stage} was taken over")


def complete_stage(
    *,
    session: Session,
    pipeline: Pipeline,
    stage: Stage,
    result_id: str,
    cache_hit: bool = False,
    output: str | None = None,
    attempt: int | None = None,
    artifact_id: str | None = None,
    release_id: uuid.UUID | None = None,
    deployment_id: uuid.UUID | None = None,
) -> list[StageEvent]:
    """Record a stage's success and what it made (artifact, release, deployment) on the
    pipeline; queue the next stage, or finish the pipeline.

    With `attempt`, only while that attempt still holds the stage (else StageSuperseded).
    Returns the events to publish once this is committed: the next stage's (built from the
    pipeline row, with what this stage made), or, when the pipeline is done,
    a waiting pipeline of the same environment that this one's end lets through.
    """
    now = utcnow()
    connection = core_connection(session)
    position = connection.execute(
        _SUCCEEDED[attempt is not None],
        {
            "p_pipeline": pipeline.id,
            "p_stage": stage,
            "p_attempt": attempt,
            "p_now": now,
            "p_result": result_id,
            "p_cache_hit": cache_hit,
            "p_output": output,
        },
    ).scalar_one_or_none()
    if position is None:
        raise StageSuperseded(f"attempt {attempt} of {stage} was taken over")
    queued = connection.execute(
        _QUEUE_NEXT, {"p_pipeline": pipeline.id, "p_next": position + 1, "p_now": now}
    ).scalar_one_or_none()
    # What the stage made and, after the last stage, the pipeline's end: one UPDATE of its row.
    made: dict[str, object] = {
        name: value
        for name, value in (
            ("artifact_id", artifact_id),
            ("release_id", release_id),
            ("deployment_id", deployment_id),
        )
        if value is not None
    }
    if queued is None:
        made |= {"status": PipelineStatus.SUCCEEDED, "finished_at": now}
    if made:
        connection.execute(
            _record_on_pipeline(tuple(made)),
            {"p_pipeline": pipeline.id, **{f"p_{name}": value for name, value in made.items()}},
        )
        for name, value in made.items():  # the caller's copy, without reading the row again
            set_committed_value(pipeline, name, value)
    if queued is not None:
        return [queueing.stage_event(session, pipeline, queued)]
    return _wake(session, pipeline)


def fail_stage(
    *,
    session: Session,
    pipeline: Pipeline,
    stage: Stage,
    error: str,
    output: str | None = None,
    attempt: int | None = None,
) -> list[StageEvent]:
    """Record a stage's failure: later stages are skipped and the pipeline fails with the reason.

    With `attempt`, only while that attempt still holds the stage (else StageSuperseded).
    Returns the events to publish once committed (a waiting pipeline this one lets through).
    """
    _fence(session, pipeline.id, stage, attempt)
    now = utcnow()
    for run in stages_of(session=session, pipeline_id=pipeline.id):
        if run.name == stage:
            run.status = StageStatus.FAILED
            run.error = error
            run.output = output
            run.finished_at = now
        elif run.status in (StageStatus.PENDING, StageStatus.QUEUED, StageStatus.WAITING):
            run.status = StageStatus.SKIPPED
        session.add(run)
    pipeline.status = PipelineStatus.FAILED
    pipeline.error = f"{stage} stage failed: {error}"
    pipeline.finished_at = now
    session.add(pipeline)
    session.flush()
    return _wake(session, pipeline)


def _wake(session: Session, pipeline: Pipeline) -> list[StageEvent]:
    event = queueing.wake_next(session=session, environment_id=pipeline.environment_id)
    return [event] if event is not None else []


def fail_pipeline(*, session: Session, pipeline: Pipeline, error: str) -> list[StageEvent]:
    """Fail a pipeline before any stage ran (its first message could not be published)."""
    first = stages_of(session=session, pipeline_id=pipeline.id)[0]
    return fail_stage(session=session, pipeline=pipeline, stage=Stage(first.name), error=error)
