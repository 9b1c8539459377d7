"""Outgoing notifications."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import httpx
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
)

from shipyard.shared.schemas.common import (
    Input,
    TriggerSecret,
)

NotificationEvent = Literal[
    "pipeline.succeeded",
    "pipeline.failed",
    "release.created",
    "rollback.finished",
    "promotion.finished",
    "scale.finished",
    "failover.finished",
    "restart.finished",
    "schedule.skipped",
]


def _check_receiver_url(value: str) -> str:
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, ValueError):
        raise ValueError("url must be an http(s) URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("url must be an http(s) URL with a host")
    return value


class SubscriptionCreate(Input):
    url: Annotated[
        str,
        StringConstraints(max_length=2048, pattern=r"^https?://[!-~]+$"),
        AfterValidator(_check_receiver_url),
    ]
    events: Annotated[list[NotificationEvent], Field(min_length=1, max_length=20)]
    # Without one, a signing secret is generated and shown once.
    secret: TriggerSecret | None = None


class SubscriptionPublic(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    created_at: datetime
    deleted_at: datetime | None = None


class SubscriptionCreated(SubscriptionPublic):
    secret: str | None = None  # only when generated, shown once


class NotificationAttemptPublic(BaseModel):
    number: int
    status_code: int | None
    error: str | None
    duration_ms: float
    attempted_at: datetime


class NotificationPublic(BaseModel):
    id: uuid.UUID
    event: str
    status: str  # pending, delivered, failed
    created_at: datetime
    finished_at: datetime | None
    attempts: list[NotificationAttemptPublic]
