"""The notify pool's work: fire due schedules (the beat's tick), POST notifications."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from functools import partial

import httpx
import structlog

from shipyard.shared.broker import publish
from shipyard.shared.db import session_scope
from shipyard.shared.exceptions import ServiceUnavailable
from shipyard.shared.models import utcnow
from shipyard.shared.services import notifications, pipelines, schedules
from shipyard.shared.services.notifications import DeliveryState
from shipyard.workers.context import WorkerContext

log = structlog.get_logger(__name__)


def run_schedules(context: WorkerContext, now: datetime) -> None:
    """Fire every schedule due at `now`; start their pipelines once the runs are committed."""
    with session_scope(context.db_url) as session:
        tick = schedules.fire_due(session=session, now=now)
    with session_scope(context.db_url) as session:
        for pipeline in tick.pipelines:
            try:
                pipelines.start(
                    session=session, pipeline=pipeline, publish=partial(publish, context.celery)
                )
            except ServiceUnavailable:
                log.error("schedule.not_started", pipeline_id=str(pipeline.id))
    for notice in tick.notices:
        publish(context.celery, notice)


def deliver_notification(
    context: WorkerContext, http: httpx.Client, notification_id: uuid.UUID
) -> float | None:
    """Make one attempt; returns the seconds to wait before the next, or None when done."""
    settings = context.settings
    with session_scope(context.db_url) as session:
        outgoing = notifications.claim_attempt(
            session=session,
            box=context.box,
            notification_id=notification_id,
            now=utcnow(),
            # An attempt lasts at most the timeout; one claimed long before is a dead worker's.
            stale_after=settings.notify_timeout_seconds + 60,
        )
    if outgoing is None:
        return None
    status_code: int | None = None
    error: str | None = None
    started = time.monotonic()
    try:
        response = http.post(outgoing.url, content=outgoing.body, headers=outgoing.headers)
        status_code = response.status_code
    except Exception as exc:  # whatever stops the POST is this attempt's result, not a crash
        error = f"{type(exc).__name__}: {exc}"[:1000]
    duration_ms = (time.monotonic() - started) * 1000
    with session_scope(context.db_url) as session:
        state = notifications.record_attempt(
            session=session,
            outgoing=outgoing,
            status_code=status_code,
            error=error,
            duration_ms=duration_ms,
            max_attempts=settings.notify_max_attempts,
        )
    log.info(
        "notify.attempt",
        notification_id=str(notification_id),
        attempt=outgoing.number,
        status_code=status_code,
        error=error,
        state=state.value,
    )
    if state != DeliveryState.RETRY:
        return None
    return notifications.backoff_seconds(outgoing.number, settings.notify_backoff_seconds)
