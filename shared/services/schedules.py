"""Scheduled promotions: cron times kept in SQL, fired by the beat's tick, guarded by gates.

SQL is the source of truth: each schedule keeps its next due time, and each due time that was
acted on is one `schedule_run` row, unique per (schedule, due time). Two ticks (or two beats, by
mistake) firing the same due time therefore make one run and at most one pipeline. A beat that was
down fires a missed schedule once, for its latest due time, not once per missed time.

Every function takes `now`: the tests' clock, and the beat's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import structlog
from croniter import croniter
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from shipyard.shared.events import NotificationQueued
from shipyard.shared.exceptions import InvalidInput, NotFound, ShipyardError
from shipyard.shared.models import App, Environment, Pipeline, Release, Schedule, ScheduleRun
from shipyard.shared.process_record import ProcessStatus
from shipyard.shared.schemas import ScheduleCreate, ScheduleGates, SchedulePublic, ScheduleRunPublic
from shipyard.shared.services import apps, deployments, notifications, rollbacks

log = structlog.get_logger(__name__)


def next_due(cron: str, timezone: str, after: datetime) -> datetime:
    """The first time `cron` matches strictly after `after`, read in `timezone`; in UTC."""
    local = after.astimezone(ZoneInfo(timezone))
    return croniter(cron, local).get_next(datetime).astimezone(UTC)


def latest_due(cron: str, timezone: str, now: datetime) -> datetime:
    """The last time `cron` matched at or before `now`, read in `timezone`; in UTC."""
    local = now.astimezone(ZoneInfo(timezone))
    previous = croniter(cron, local).get_prev(datetime)
    following = croniter(cron, previous).get_next(datetime)
    return (following if following <= local else previous).astimezone(UTC)


# --- CRUD --------------------------------------------------------------------------------------


def create_schedule(*, session: Session, app: App, data: ScheduleCreate, now: datetime) -> Schedule:
    """A promotion schedule of `app`, first due at the cron's next time after `now`."""
    source = apps.get_environment(session=session, app=app, name=data.source)
    target = apps.get_environment(session=session, app=app, name=data.target)
    if source.id == target.id:
        raise InvalidInput("a promotion schedule needs two different environments")
    schedule = Schedule(
        app_id=app.id,
        action=data.action,
        source_environment_id=source.id,
        target_environment_id=target.id,
        cron=data.cron,
        timezone=data.timezone,
        min_soak_seconds=data.gates.min_soak_seconds,
        require_healthy=data.gates.require_healthy,
        next_due_at=next_due(data.cron, data.timezone, now),
    )
    session.add(schedule)
    session.flush()
    return schedule


def list_schedules(*, session: Session, app: App) -> list[Schedule]:
    """`app`'s schedules (not removed), oldest first."""
    query = select(Schedule).where(Schedule.app_id == app.id, col(Schedule.deleted_at).is_(None))
    return list(session.exec(query.order_by(col(Schedule.created_at))))


def get_schedule(*, session: Session, app: App, schedule_id: uuid.UUID) -> Schedule:
    """A schedule of `app`, removed or not, or NotFound."""
    schedule = session.get(Schedule, schedule_id)
    if schedule is None or schedule.app_id != app.id:
        raise NotFound(f"schedule {schedule_id} of app {app.name!r} not found")
    return schedule


def remove_schedule(
    *, session: Session, app: App, schedule_id: uuid.UUID, now: datetime
) -> Schedule:
    """Stop a schedule; its runs stay on record."""
    schedule = get_schedule(session=session, app=app, schedule_id=schedule_id)
    if schedule.deleted_at is not None:
        raise NotFound(f"schedule {schedule_id} of app {app.name!r} was already removed")
    schedule.deleted_at = now
    session.add(schedule)
    session.flush()
    return schedule


def runs_of(*, session: Session, schedule: Schedule, limit: int) -> list[ScheduleRun]:
    """The schedule's runs, newest due time first."""
    query = select(ScheduleRun).where(ScheduleRun.schedule_id == schedule.id)
    return list(session.exec(query.order_by(col(ScheduleRun.due_at).desc()).limit(limit)))


def target_environment(*, session: Session, schedule: Schedule) -> Environment:
    """The environment a schedule deploys to (kept by its foreign key)."""
    target = session.get(Environment, schedule.target_environment_id)
    assert target is not None
    return target


def schedule_public(*, session: Session, schedule: Schedule) -> SchedulePublic:
    """The API view of a schedule, with its latest run."""
    app = session.get(App, schedule.app_id)
    source = session.get(Environment, schedule.source_environment_id)
    target = target_environment(session=session, schedule=schedule)
    assert app is not None and source is not None
    last = runs_of(session=session, schedule=schedule, limit=1)
    return SchedulePublic(
        id=schedule.id,
        app=app.name,
        action=schedule.action,
        source=source.name,
        target=target.name,
        cron=schedule.cron,
        timezone=schedule.timezone,
        gates=ScheduleGates(
            min_soak_seconds=schedule.min_soak_seconds, require_healthy=schedule.require_healthy
        ),
        next_due_at=schedule.next_due_at if schedule.deleted_at is None else None,
        created_at=schedule.created_at,
        deleted_at=schedule.deleted_at,
        last_run=ScheduleRunPublic.model_validate(last[0], from_attributes=True) if last else None,
    )


# --- the tick ----------------------------------------------------------------------------------


@dataclass
class Tick:
    """What one tick did: its runs, the pipelines to start and notifications to publish."""

    runs: list[ScheduleRun] = field(default_factory=list)
    pipelines: list[Pipeline] = field(default_factory=list)
    notices: list[NotificationQueued] = field(default_factory=list)


def fire_due(*, session: Session, now: datetime) -> Tick:
    """Act on every schedule due at `now`: one run each, fired or skipped; the caller commits.

    Each schedule is handled in a savepoint, so a run another tick already made is left alone
    without undoing the others.
    """
    tick = Tick()
    due = session.exec(
        select(Schedule)
        .where(col(Schedule.deleted_at).is_(None), col(Schedule.next_due_at) <= now)
        .order_by(col(Schedule.next_due_at))
    ).all()
    for schedule in due:
        schedule_id = schedule.id
        try:
            with session.begin_nested():
                _fire(session, schedule, now, tick)
        except IntegrityError:
            log.info("schedule.already_fired", schedule_id=str(schedule_id))
    return tick


def _fire(session: Session, schedule: Schedule, now: datetime, tick: Tick) -> None:
    due_at = max(latest_due(schedule.cron, schedule.timezone, now), schedule.next_due_at)
    run = ScheduleRun(schedule_id=schedule.id, due_at=due_at, outcome="fired", ran_at=now)
    session.add(run)
    session.flush()  # the unique (schedule, due time) claim: a second tick stops here
    schedule.next_due_at = next_due(schedule.cron, schedule.timezone, now)
    session.add(schedule)
    app = session.get(App, schedule.app_id)
    source = session.get(Environment, schedule.source_environment_id)
    target = session.get(Environment, schedule.target_environment_id)
    assert app is not None and source is not None and target is not None
    reason = gate_failure(session=session, schedule=schedule, source=source, target=target, now=now)
    if reason is None:
        try:
            pipeline = rollbacks.create_promotion_pipeline(
                session=session,
                app=app,
                source=source,
                target=target,
                trigger="schedule",
                requested_by=f"schedule {schedule.id}",
            )
        except ShipyardError as exc:
            reason = exc.message
        else:
            run.pipeline_id = pipeline.id
            tick.pipelines.append(pipeline)
    if reason is not None:
        run.outcome = "skipped"
        run.reason = reason
        tick.notices += notifications.emit(
            session=session,
            app=app,
            event="schedule.skipped",
            data={
                "environment": target.name,
                "schedule": {"id": str(schedule.id), "from": source.name, "to": target.name},
                "run": {"id": str(run.id), "due_at": due_at.isoformat(), "reason": reason},
            },
        )
    session.add(run)
    session.flush()
    tick.runs.append(run)
    log.info("schedule.run", schedule_id=str(schedule.id), outcome=run.outcome, reason=run.reason)


def gate_failure(
    *, session: Session, schedule: Schedule, source: Environment, target: Environment, now: datetime
) -> str | None:
    """Why the promotion may not happen now, or None: soak time, health, nothing new to move."""
    live = deployments.live_deployment(session=session, environment_id=source.id)
    if live is None:
        return f"{source.name} has nothing live to promote"
    release = session.get(Release, live.release_id)
    assert release is not None
    if live.started_at is not None and schedule.min_soak_seconds:
        soaked = (now - live.started_at).total_seconds()
        if soaked < schedule.min_soak_seconds:
            return (
                f"{source.name} v{release.version} has been live {int(soaked)}s, "
                f"less than the {schedule.min_soak_seconds}s soak time"
            )
    if schedule.require_healthy:
        unhealthy = [
            p.get("type", "?") for p in live.processes if p.get("status") != ProcessStatus.RUNNING
        ]
        if not live.processes or unhealthy:
            which = ", ".join(unhealthy) or "no process"
            return f"{source.name} v{release.version} is not healthy ({which} not running)"
    in_target = deployments.live_deployment(session=session, environment_id=target.id)
    if in_target is not None:
        target_release = session.get(Release, in_target.release_id)
        if target_release is not None and target_release.artifact_id == release.artifact_id:
            return f"{target.name} already runs the artifact live in {source.name}"
    return None
