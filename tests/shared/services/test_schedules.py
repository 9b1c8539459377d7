"""Scheduled promotions under a controllable clock: due times, gates, one run per due time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, select

from shipyard.shared.crypto import SecretBox
from shipyard.shared.exceptions import InvalidInput
from shipyard.shared.models import (
    App,
    Environment,
    Notification,
    Pipeline,
    Release,
    Schedule,
    ScheduleRun,
)
from shipyard.shared.schemas import ScheduleCreate, SubscriptionCreate
from shipyard.shared.services import deployments, notifications, schedules
from tests.shared.factories import make_artifact, make_release

# Monday 2026-03-23, 10:00 UTC: the clock every test starts from.
T0 = datetime(2026, 3, 23, 10, 0, tzinfo=UTC)


def at(**delta: float) -> datetime:
    return T0 + timedelta(**delta)


def make_live(
    session: Session,
    app: App,
    environment: Environment,
    label: str = "one",
    live_since: datetime = T0,
    processes: list[dict[str, Any]] | None = None,
) -> Release:
    """A release of artifact `label` live in `environment` since `live_since`."""
    release = make_release(session, app, environment, make_artifact(session, app, label))
    deployment = deployments.begin_deployment(
        session=session, pipeline_id=release.pipeline_id, release=release, cause="deploy"
    )
    assert deployment is not None
    recorded = [{"type": "web", "status": "running"}] if processes is None else processes
    deployments.go_live(session=session, deployment=deployment, processes=recorded)
    deployment.started_at = live_since
    session.add(deployment)
    session.commit()
    return release


def add_schedule(
    session: Session, app: App, *, cron: str = "0 3 * * *", soak: int = 0, healthy: bool = True
) -> Schedule:
    data = ScheduleCreate.model_validate(
        {
            "from": "staging",
            "to": "production",
            "cron": cron,
            "timezone": "Europe/Paris",
            "gates": {"min_soak_seconds": soak, "require_healthy": healthy},
        }
    )
    schedule = schedules.create_schedule(session=session, app=app, data=data, now=T0)
    session.commit()
    return schedule


def fire(session: Session, now: datetime) -> schedules.Tick:
    tick = schedules.fire_due(session=session, now=now)
    session.commit()
    return tick


def runs(session: Session) -> list[ScheduleRun]:
    return list(session.exec(select(ScheduleRun).order_by(col(ScheduleRun.due_at))))


def test_due_times_follow_the_cron_in_its_time_zone_across_dst() -> None:
    # 03:00 in Paris is 02:00 UTC in winter (CET) and 01:00 UTC in summer (CEST, from 29 March).
    assert schedules.next_due("0 3 * * *", "Europe/Paris", T0) == datetime(
        2026, 3, 24, 2, 0, tzinfo=UTC
    )
    summer = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
    assert schedules.next_due("0 3 * * *", "Europe/Paris", summer) == datetime(
        2026, 4, 2, 1, 0, tzinfo=UTC
    )
    # 2026-03-29 02:30 does not exist in Paris (clocks jump from 02:00 to 03:00).
    spring = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
    assert schedules.next_due("30 2 * * *", "Europe/Paris", spring) > spring
    assert schedules.latest_due("0 * * * *", "UTC", at(minutes=59)) == T0
    assert schedules.latest_due("0 * * * *", "UTC", T0) == T0  # a due time is due at itself


@pytest.mark.usefixtures("staging", "production")
def test_a_new_schedule_is_first_due_at_the_next_cron_time(session: Session, app: App) -> None:
    schedule = add_schedule(session, app, cron="*/15 9-17 * * 1-5")

    # 10:00 UTC is 11:00 in Paris (CET, before the switch): next is 11:15 Paris.
    assert schedule.next_due_at == at(minutes=15)
    assert schedule.timezone == "Europe/Paris"


@pytest.mark.usefixtures("production")
def test_a_schedule_between_one_environment_and_itself_is_refused(
    session: Session, app: App, staging: Environment
) -> None:
    data = ScheduleCreate.model_validate({"from": "staging", "to": "staging", "cron": "@daily"})
    with pytest.raises(InvalidInput):
        schedules.create_schedule(session=session, app=app, data=data, now=T0)


@pytest.mark.usefixtures("production")
def test_nothing_fires_before_the_due_time_and_a_due_schedule_fires_once(
    session: Session, app: App, staging: Environment
) -> None:
    release = make_live(session, app, staging)
    schedule = add_schedule(session, app, cron="0 * * * *")  # hourly

    assert fire(session, at(minutes=59, seconds=59)).runs == []
    tick = fire(session, at(hours=1, seconds=5))
    again = fire(session, at(hours=1, seconds=35))

    (run,) = tick.runs
    assert (run.outcome, run.reason, run.due_at) == ("fired", None, at(hours=1))
    (pipeline,) = tick.pipelines
    assert run.pipeline_id == pipeline.id
    assert (pipeline.kind, pipeline.trigger) == ("promotion", "schedule")
    assert pipeline.source_release_id == release.id
    assert again.runs == []
    session.refresh(schedule)
    assert schedule.next_due_at == at(hours=2)


@pytest.mark.usefixtures("production")
def test_a_release_younger_than_the_soak_time_is_skipped_with_the_reason(
    session: Session, app: App, staging: Environment
) -> None:
    make_live(session, app, staging, live_since=at(minutes=-30))
    add_schedule(session, app, cron="0 * * * *", soak=7200)

    tick = fire(session, at(hours=1))

    (run,) = tick.runs
    assert run.outcome == "skipped"
    assert run.reason == "staging v1 has been live 5400s, less than the 7200s soak time"
    assert run.pipeline_id is None and tick.pipelines == []
    assert session.exec(select(Pipeline).where(Pipeline.kind == "promotion")).first() is None
    # Soaked long enough at the next due time: it fires.
    (later,) = fire(session, at(hours=2)).runs
    assert later.outcome == "fired"


@pytest.mark.usefixtures("production")
@pytest.mark.parametrize(
    ("processes", "reason"),
    [
        ([{"type": "web", "status": "crashed"}], "staging v1 is not healthy (web not running)"),
        ([], "staging v1 is not healthy (no process not running)"),
    ],
)
def test_an_unhealthy_source_is_skipped(
    session: Session,
    app: App,
    staging: Environment,
    processes: list[dict[str, Any]],
    reason: str,
) -> None:
    make_live(session, app, staging, processes=processes)
    add_schedule(session, app, cron="0 * * * *")

    (run,) = fire(session, at(hours=1)).runs

    assert (run.outcome, run.reason) == ("skipped", reason)


@pytest.mark.usefixtures("production")
def test_health_is_not_checked_when_the_gate_is_off(
    session: Session, app: App, staging: Environment
) -> None:
    make_live(session, app, staging, processes=[{"type": "web", "status": "crashed"}])
    add_schedule(session, app, cron="0 * * * *", healthy=False)

    (run,) = fire(session, at(hours=1)).runs

    assert run.outcome == "fired"


@pytest.mark.usefixtures("staging", "production")
def test_nothing_live_or_nothing_new_is_skipped(
    session: Session, app: App, staging: Environment, production: Environment
) -> None:
    add_schedule(session, app, cron="0 * * * *")
    (nothing,) = fire(session, at(hours=1)).runs
    release = make_live(session, app, staging)
    make_live(session, app, production, label="one")  # production runs the same artifact

    (same,) = fire(session, at(hours=2)).runs

    assert nothing.reason == "staging has nothing live to promote"
    assert same.reason == "production already runs the artifact live in staging"
    assert release.version == 1


@pytest.mark.usefixtures("production")
def test_a_beat_that_was_down_fires_a_missed_schedule_once_for_its_latest_due_time(
    session: Session, app: App, staging: Environment
) -> None:
    make_live(session, app, staging)
    schedule = add_schedule(session, app, cron="0 * * * *")

    tick = fire(session, at(hours=5, minutes=30))

    (run,) = tick.runs
    assert run.due_at == at(hours=5)
    session.refresh(schedule)
    assert schedule.next_due_at == at(hours=6)


@pytest.mark.usefixtures("production")
def test_two_ticks_firing_the_same_due_time_make_one_run_and_one_pipeline(
    session: Session, app: App, staging: Environment
) -> None:
    make_live(session, app, staging)
    schedule = add_schedule(session, app, cron="0 * * * *")
    first = fire(session, at(hours=1, seconds=1))
    # A second beat read the schedule before the first one moved its next due time on.
    schedule.next_due_at = at(hours=1)
    session.add(schedule)
    session.commit()

    second = fire(session, at(hours=1, seconds=2))

    assert len(first.runs) == 1 and second.runs == [] and second.pipelines == []
    assert len(runs(session)) == 1
    assert len(session.exec(select(Pipeline).where(Pipeline.kind == "promotion")).all()) == 1


@pytest.mark.usefixtures("production")
def test_a_removed_schedule_no_longer_fires_and_keeps_its_runs(
    session: Session, app: App, staging: Environment
) -> None:
    make_live(session, app, staging)
    schedule = add_schedule(session, app, cron="0 * * * *")
    fire(session, at(hours=1))

    schedules.remove_schedule(session=session, app=app, schedule_id=schedule.id, now=at(hours=1))
    session.commit()

    assert fire(session, at(hours=3)).runs == []
    assert len(schedules.runs_of(session=session, schedule=schedule, limit=10)) == 1
    assert schedules.list_schedules(session=session, app=app) == []
    public = schedules.schedule_public(session=session, schedule=schedule)
    assert public.next_due_at is None and public.deleted_at == at(hours=1)


@pytest.mark.usefixtures("production")
def test_a_skipped_run_notifies_the_subscribers_of_schedule_skipped(
    session: Session, app: App, staging: Environment, box: SecretBox
) -> None:
    notifications.create_subscription(
        session=session,
        box=box,
        app=app,
        data=SubscriptionCreate(url="http://127.0.0.1:9/hook", events=["schedule.skipped"]),
    )
    add_schedule(session, app, cron="0 * * * *")

    tick = fire(session, at(hours=1))

    (notice,) = tick.notices
    notification = session.get(Notification, notice.notification_id)
    assert notification is not None and notification.event == "schedule.skipped"
    assert '"reason":"staging has nothing live to promote"' in notification.body
