"""One thin task per stage: parse the event, hand over to workers.stages."""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import cache, cached_property
from typing import Any

import httpx
from celery import Celery, Task
from sqlalchemy.exc import OperationalError

from shipyard.shared import constants
from shipyard.shared.events import (
    ArtifactBuilt,
    ArtifactsExpired,
    CertificatesDue,
    NotificationQueued,
    PipelineQueued,
    ReleaseCreated,
)
from shipyard.shared.models import utcnow
from shipyard.shared.services.stage_runs import ClaimOutcome
from shipyard.shared.settings import get_settings
from shipyard.shared.stages import STAGE_ROUTES, Stage
from shipyard.workers.acme import order_due
from shipyard.workers.app import app
from shipyard.workers.context import WorkerContext
from shipyard.workers.hosts import watch_run_hosts
from shipyard.workers.stages.build import build_work, remove_expired_artifacts
from shipyard.workers.stages.frame import StageWork, execute, reconcile
from shipyard.workers.stages.release import release_work
from shipyard.workers.stages.run import forwarded, run_work
from shipyard.workers.triggers import deliver_notification, run_schedules

_RETRY: dict[str, Any] = {
    # The database or broker was unreachable: retry with backoff, the stage guard keeps it safe.
    "autoretry_for": (OperationalError, ConnectionError),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 10,
}


class StageTask(Task):  # type: ignore[misc]
    """Base task holding this worker process's long-lived context."""

    @property
    def context(self) -> WorkerContext:
        # Each task is its own instance: the context is made once per process, not per task.
        return _process_context(self.app)


@cache
def _process_context(celery: Celery) -> WorkerContext:
    return WorkerContext.create(get_settings(), celery)


def _run_stage(task: StageTask, pipeline_id: uuid.UUID, stage: Stage, work: StageWork) -> None:
    outcome = execute(task.context, pipeline_id, stage, task.request.hostname, work)
    if outcome == ClaimOutcome.BUSY:
        # Another worker holds the stage. If it is dead its heartbeat goes stale and the next
        # try takes over; if it is alive, the next try finds the stage done.
        countdown = task.context.settings.stale_after_seconds / 3
        raise task.retry(countdown=countdown, max_retries=None)


@app.task(name=STAGE_ROUTES[Stage.BUILD].task, base=StageTask, bind=True, **_RETRY)
def build_stage(self: StageTask, event: dict[str, Any]) -> None:
    """pipeline.queued → build the commit → artifact.built."""
    _run_stage(self, PipelineQueued.model_validate(event).pipeline_id, Stage.BUILD, build_work)


@app.task(name=STAGE_ROUTES[Stage.RELEASE].task, base=StageTask, bind=True, **_RETRY)
def release_stage(self: StageTask, event: dict[str, Any]) -> None:
    """artifact.built → release vN → release.created."""
    _run_stage(self, ArtifactBuilt.model_validate(event).pipeline_id, Stage.RELEASE, release_work)


@app.task(name=STAGE_ROUTES[Stage.RUN].task, base=StageTask, bind=True, **_RETRY)
def run_stage(self: StageTask, event: dict[str, Any]) -> None:
    """release.created → start healthy → switch live, on the environment's run host."""
    released = ReleaseCreated.model_validate(event)
    if not forwarded(self.context, released):
        _run_stage(self, released.pipeline_id, Stage.RUN, run_work)


@app.task(name=constants.REMOVE_ARTIFACTS_TASK, base=StageTask, bind=True, **_RETRY)
def remove_artifacts(self: StageTask, event: dict[str, Any]) -> None:
    """Delete the files, registry manifests or images of garbage-collected artifacts."""
    failed = remove_expired_artifacts(
        self.context, ArtifactsExpired.model_validate(event).artifact_ids
    )
    if failed:  # the store was unreachable: try those again later, with backoff
        countdown = min(2 ** (self.request.retries + 1), 300)
        raise self.retry(
            args=[ArtifactsExpired(artifact_ids=failed).model_dump(mode="json")],
            countdown=countdown,
            max_retries=10,
        )


@app.task(name=constants.RECONCILE_TASK, base=StageTask, bind=True, **_RETRY)
def reconcile_pipelines(self: StageTask) -> None:
    """Publish again the stages whose message was lost or whose worker died (run by the beat)."""
    reconcile(self.context)


@app.task(name=constants.HOSTS_TICK_TASK, base=StageTask, bind=True, **_RETRY)
def tick_hosts(self: StageTask) -> None:
    """Record which run hosts are up; move a lost one's environments (run by the beat)."""
    watch_run_hosts(self.context)


@app.task(name=constants.SCHEDULE_TICK_TASK, base=StageTask, bind=True, **_RETRY)
def tick_schedules(self: StageTask, now: str | None = None) -> None:
    """Fire the schedules due now (run by the beat); `now` (ISO 8601) is for tests' clocks."""
    run_schedules(self.context, datetime.fromisoformat(now) if now else utcnow())


@app.task(name=constants.CERTIFICATES_TASK, base=StageTask, bind=True, **_RETRY)
def order_certificates(self: StageTask, event: dict[str, Any] | None = None) -> None:
    """Order the certificates due now from the ACME CA (run by the beat; sent by the API when a
    domain is added or a renewal forced). Failures are recorded and retried with backoff."""
    if event is not None:
        CertificatesDue.model_validate(event)
    context = self.context
    order_due(settings=context.settings, box=context.box, challenges_redis=context.redis)


class NotifyTask(StageTask):
    """A delivery task with this worker process's HTTP client."""

    @cached_property
    def http(self) -> httpx.Client:
        # Receivers answer directly: no redirect is followed and no proxy variable applies.
        timeout = self.context.settings.notify_timeout_seconds
        return httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)


@app.task(name=constants.NOTIFY_TASK, base=NotifyTask, bind=True, **_RETRY)
def deliver(self: NotifyTask, event: dict[str, Any]) -> None:
    """notification.queued → one signed POST; a failure is retried later with backoff."""
    notification_id = NotificationQueued.model_validate(event).notification_id
    delay = deliver_notification(self.context, self.http, notification_id)
    if delay is not None:
        # Attempts are counted in SQL (notify_max_attempts), not by Celery.
        raise self.retry(countdown=delay, max_retries=None)
