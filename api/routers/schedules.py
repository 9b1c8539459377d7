"""Scheduled promotions: `/v1/apps/{app}/schedules`, and each schedule's runs."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from shipyard.api.auth import PrincipalDep, deploy_scoped
from shipyard.api.deps import SessionDep
from shipyard.shared.models import utcnow
from shipyard.shared.schemas import ScheduleCreate, SchedulePublic, ScheduleRunPublic
from shipyard.shared.services import apps, schedules

router = APIRouter(tags=["schedules"])


@router.post("/apps/{app}/schedules", status_code=status.HTTP_201_CREATED)
@deploy_scoped
def create_schedule(
    app: str, data: ScheduleCreate, session: SessionDep, principal: PrincipalDep
) -> SchedulePublic:
    """Promote `from` to `to` at every time `cron` matches in `timezone`, when the gates pass."""
    principal.require_deploy(data.target)
    owner = apps.get_app(session=session, name=app)
    schedule = schedules.create_schedule(session=session, app=owner, data=data, now=utcnow())
    session.commit()
    return schedules.schedule_public(session=session, schedule=schedule)


@router.get("/apps/{app}/schedules")
def list_schedules(app: str, session: SessionDep) -> list[SchedulePublic]:
    """The app's schedules, each with its next due time and latest run."""
    owner = apps.get_app(session=session, name=app)
    return [
        schedules.schedule_public(session=session, schedule=schedule)
        for schedule in schedules.list_schedules(session=session, app=owner)
    ]


@router.delete("/apps/{app}/schedules/{schedule_id}")
@deploy_scoped
def remove_schedule(
    app: str, schedule_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> SchedulePublic:
    """Stop a schedule; its runs stay queryable."""
    owner = apps.get_app(session=session, name=app)
    schedule = schedules.get_schedule(session=session, app=owner, schedule_id=schedule_id)
    principal.require_deploy(schedules.target_environment(session=session, schedule=schedule).name)
    schedule = schedules.remove_schedule(
        session=session, app=owner, schedule_id=schedule_id, now=utcnow()
    )
    session.commit()
    return schedules.schedule_public(session=session, schedule=schedule)


@router.get("/apps/{app}/schedules/{schedule_id}/runs")
def list_runs(
    app: str,
    schedule_id: uuid.UUID,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[ScheduleRunPublic]:
    """Every run of a schedule, newest first: fired (with its pipeline) or skipped (why)."""
    owner = apps.get_app(session=session, name=app)
    schedule = schedules.get_schedule(session=session, app=owner, schedule_id=schedule_id)
    return [
        ScheduleRunPublic.model_validate(run, from_attributes=True)
        for run in schedules.runs_of(session=session, schedule=schedule, limit=limit)
    ]
