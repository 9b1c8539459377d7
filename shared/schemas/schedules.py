"""Scheduled promotions with gates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from shipyard.shared.schemas.common import (
    Input,
    Name,
)


def _check_cron(value: str) -> str:
    fields = value.split()
    if not (len(fields) == 5 or (len(fields) == 1 and value.startswith("@"))):
        raise ValueError("cron must have five fields (minute hour day month weekday) or be @daily…")
    try:
        croniter(value, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except (CroniterError, TypeError) as exc:
        raise ValueError(f"cron expression is not valid: {exc}") from None
    return " ".join(fields)


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError("timezone must be an IANA name such as UTC or Europe/Paris") from None
    return value


CronExpression = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, pattern=r"^[ -~]+$"),
    AfterValidator(_check_cron),
]
TimezoneName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+/-]+$"),
    AfterValidator(_check_timezone),
]


class ScheduleGates(Input):
    min_soak_seconds: Annotated[int, Field(ge=0, le=366 * 86400)] = 0
    require_healthy: bool = True


class ScheduleCreate(Input):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    action: Literal["promote"] = "promote"
    source: Name = Field(alias="from")
    target: Name = Field(alias="to")
    cron: CronExpression
    timezone: TimezoneName = "UTC"
    gates: ScheduleGates = ScheduleGates()


class ScheduleRunPublic(BaseModel):
    id: uuid.UUID
    schedule_id: uuid.UUID
    due_at: datetime
    outcome: str  # fired, skipped
    reason: str | None
    pipeline_id: uuid.UUID | None
    ran_at: datetime


class SchedulePublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: uuid.UUID
    app: str
    action: str
    source: str = Field(alias="from")
    target: str = Field(alias="to")
    cron: str
    timezone: str
    gates: ScheduleGates
    next_due_at: datetime | None  # None once removed
    created_at: datetime
    deleted_at: datetime | None = None
    last_run: ScheduleRunPublic | None = None
