"""The reconciler: find stages whose message was lost or whose worker died, and publish them again.

Run periodically by the beat. Every stage is idempotent and guarded by its claim, so publishing
a stage again is always safe; at worst the extra message is ignored.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from shipyard.shared.events import StageEvent
from shipyard.shared.models import Pipeline, StageRun, StageStatus
from shipyard.shared.services import queueing
from shipyard.shared.stages import Stage


def stranded_stages(
    *, session: Session, now: datetime, stale_after: float, queued_after: float
) -> list[StageEvent]:
    """Re-queue stages that nobody is working on; returns the events to publish after commit.

    - running, but the worker's heartbeat is older than `stale_after`: the worker died;
    - queued for longer than `queued_after`: the message may have been lost (a flushed or
      restarted Redis, a crash between commit and publish);
    - waiting, with nothing ahead any more: a lost wake-up.
    """
    stale = now - timedelta(seconds=stale_after)
    overdue = now - timedelta(seconds=queued_after)
    stranded = (
        (col(StageRun.status) == StageStatus.RUNNING) & (col(StageRun.heartbeat_at) < stale)
    ) | ((col(StageRun.status) == StageStatus.QUEUED) & (col(StageRun.queued_at) < overdue))
    rows = session.exec(
        select(Pipeline, StageRun)
        .join(StageRun, col(StageRun.pipeline_id) == col(Pipeline.id))
        .where(queueing.active())
        .where(stranded)
    ).all()
    events: list[StageEvent] = []
    for pipeline, run in rows:
        # Compare-and-set: a worker that claimed or finished the stage since the read above
        # changed its row, and then this re-queue does nothing.
        requeued = session.execute(
            update(StageRun)
            .where(col(StageRun.id) == run.id, col(StageRun.attempt) == run.attempt, stranded)
            .values(status=StageStatus.QUEUED, queued_at=now)  # republished once per period
        )
        if requeued.rowcount == 1:  # type: ignore[attr-defined]
            events.append(queueing.stage_event(session, pipeline, Stage(run.name)))
    waiting_environments = session.exec(
        select(Pipeline.environment_id)
        .join(StageRun, col(StageRun.pipeline_id) == col(Pipeline.id))
        .where(queueing.active(), StageRun.status == StageStatus.WAITING)
        .distinct()
    ).all()
    for environment_id in waiting_environments:
        woken = queueing.wake_next(session=session, environment_id=environment_id)
        if woken is not None:
            events.append(woken)
    session.flush()
    return events
