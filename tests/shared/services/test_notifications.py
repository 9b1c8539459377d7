"""Outgoing notifications: which facts become which events, the signed body, attempts, backoff."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from sqlmodel import Session, col, select

from shipyard.shared import constants
from shipyard.shared.crypto import SecretBox
from shipyard.shared.events import NotificationQueued
from shipyard.shared.exceptions import NotFound
from shipyard.shared.models import (
    App,
    Environment,
    Notification,
    NotificationAttempt,
    PipelineStatus,
    Subscription,
)
from shipyard.shared.schemas import SubscriptionCreate
from shipyard.shared.services import notifications, releases, stage_runs, webhooks
from shipyard.shared.services.notifications import DeliveryState
from shipyard.shared.stages import PipelineKind
from tests.shared.factories import make_artifact, make_pipeline

NOW = datetime(2026, 3, 23, 10, 0, tzinfo=UTC)
SECRET = "a-subscription-secret"


def subscribe(session: Session, box: SecretBox, app: App, *events: str) -> Subscription:
    data = SubscriptionCreate.model_validate(
        {"url": "http://127.0.0.1:9/hook", "events": list(events), "secret": SECRET}
    )
    subscription, generated = notifications.create_subscription(
        session=session, box=box, app=app, data=data
    )
    session.commit()
    assert generated is None
    return subscription


def bodies(session: Session) -> list[dict[str, object]]:
    rows = session.exec(select(Notification).order_by(col(Notification.event))).all()
    return [json.loads(row.body) for row in rows]


def test_a_succeeded_promotion_notifies_pipeline_succeeded_and_promotion_finished(
    session: Session, box: SecretBox, app: App, staging: Environment
) -> None:
    subscribe(session, box, app, "pipeline.succeeded", "promotion.finished")
    subscribe(session, box, app, "pipeline.failed")
    pipeline = make_pipeline(session, app, staging, kind=PipelineKind.PROMOTION)
    pipeline.status = PipelineStatus.SUCCEEDED

    queued = notifications.pipeline_notices(session=session, pipeline=pipeline, stage="run")
    session.commit()

    assert len(queued) == 2
    succeeded, promotion = bodies(session)
    assert succeeded["event"] == "pipeline.succeeded"
    assert promotion["event"] == "promotion.finished"
    assert succeeded["app"] == "web" and succeeded["environment"] == "staging"
    assert succeeded["pipeline"] == promotion["pipeline"]
    assert {"id": str(pipeline.id), "kind": "promotion", "status": "succeeded"}.items() <= (
        succeeded["pipeline"].items()  # type: ignore[attr-defined]
    )
    assert {str(q.notification_id) for q in queued} == {succeeded["id"], promotion["id"]}


def test_a_release_stage_success_is_release_created_and_a_failure_is_pipeline_failed(
    session: Session, box: SecretBox, app: App, staging: Environment
) -> None:
    subscribe(session, box, app, "release.created", "pipeline.failed", "rollback.finished")
    pipeline = make_pipeline(session, app, staging)
    release = releases.create_release(
        session=session,
        pipeline=pipeline,
        artifact_id=make_artifact(session, app).id,
        cause="deploy",
    )
    pipeline.release_id = release.id

    created = notifications.pipeline_notices(session=session, pipeline=pipeline, stage="release")
    stage_runs.fail_stage(session=session, pipeline=pipeline, stage="run", error="unhealthy")
    failed = notifications.pipeline_notices(session=session, pipeline=pipeline, stage="run")
    session.commit()

    assert len(created) == 1 and len(failed) == 1  # a deploy is not a rollback
    failure, release_created = bodies(session)
    assert release_created["release"] == {
        "id": str(release.id),
        "version": 1,
        "artifact_id": release.artifact_id,
        "cause": "deploy",
    }
    assert failure["event"] == "pipeline.failed"
    assert failure["pipeline"]["error"] == "run stage failed: unhealthy"  # type: ignore[index]


def test_a_stage_in_the_middle_of_a_pipeline_notifies_nothing(
    session: Session, box: SecretBox, app: App, staging: Environment
) -> None:
    subscribe(session, box, app, *notifications.EVENTS)
    pipeline = make_pipeline(session, app, staging)

    assert notifications.pipeline_notices(session=session, pipeline=pipeline, stage="build") == []


def _succeeded_and_queued(
    session: Session, box: SecretBox, app: App, staging: Environment
) -> NotificationQueued:
    """A subscriber to pipeline.succeeded, and the committed notice of a pipeline that did."""
    subscribe(session, box, app, "pipeline.succeeded")
    pipeline = make_pipeline(session, app, staging)
    pipeline.status = PipelineStatus.SUCCEEDED
    (queued,) = notifications.pipeline_notices(session=session, pipeline=pipeline, stage="run")
    session.commit()
    return queued


def test_attempts_are_signed_recorded_and_retried_until_delivered(
    session: Session, box: SecretBox, app: App, staging: Environment
) -> None:
    queued = _succeeded_and_queued(session, box, app, staging)
    states = []
    for number, status_code in enumerate((500, None, 204), start=1):
        outgoing = notifications.claim_attempt(
            session=session,
            box=box,
            notification_id=queued.notification_id,
            now=NOW,
            stale_after=60,
        )
        assert outgoing is not None and outgoing.number == number
        assert webhooks.signature_matches(
            SECRET, outgoing.body, outgoing.headers[constants.SIGNATURE_HEADER]
        )
        assert outgoing.headers["X-Shipyard-Delivery"] == str(queued.notification_id)
        states.append(
            notifications.record_attempt(
                session=session,
                outgoing=outgoing,
                status_code=status_code,
                error=None if status_code else "ConnectError: refused",
                duration_ms=12.5,
                max_attempts=8,
            )
        )
        session.commit()

    assert states == [DeliveryState.RETRY, DeliveryState.RETRY, DeliveryState.DELIVERED]
    (public,) = notifications.notifications_of(
        session=session, subscription=session.exec(select(Subscription)).one(), limit=10
    )
    assert public.status == "delivered"
    assert [(a.number, a.status_code, a.error) for a in public.attempts] == [
        (1, 500, None),
        (2, None, "ConnectError: refused"),
        (3, 204, None),
    ]
    assert all(a.duration_ms == 12.5 for a in public.attempts)
    again = notifications.claim_attempt(
        session=session, box=box, notification_id=queued.notification_id, now=NOW, stale_after=60
    )
    assert again is None  # delivered: a redelivered message sends nothing


def test_a_duplicate_message_claims_nothing_while_an_attempt_is_under_way(
    session: Session, box: SecretBox, app: App, staging: Environment
) -> None:
    queued = _succeeded_and_queued(session, box, app, staging)

    def claim(now: datetime) -> notifications.Outgoing | None:
        outgoing = notifications.claim_attempt(
            session=session,
            box=box,
            notification_id=queued.notification_id,
            now=now,
            stale_after=60,
        )
        session.commit()
        return outgoing

    first = claim(NOW)
    duplicate = claim(NOW + timedelta(seconds=5))
    # The first attempt's worker died: after `stale_after` the attempt is taken over.
    takeover = claim(NOW + timedelta(seconds=61))

    assert first is not None and first.number == 1
    assert duplicate is None
    assert takeover is not None and takeover.number == 2


def test_the_last_failed_attempt_gives_up(
    session: Session, box: SecretBox, app: App, staging: Environment
) -> None:
    queued = _succeeded_and_queued(session, box, app, staging)
    states = []
    for _ in range(3):
        outgoing = notifications.claim_attempt(
            session=session,
            box=box,
            notification_id=queued.notification_id,
            now=NOW,
            stale_after=60,
        )
        assert outgoing is not None
        states.append(
            notifications.record_attempt(
                session=session,
                outgoing=outgoing,
                status_code=503,
                error=None,
                duration_ms=1,
                max_attempts=3,
            )
        )
        session.commit()

    assert states[-1] == DeliveryState.FAILED
    notification = session.get(Notification, queued.notification_id)
    assert notification is not None and notification.status == "failed"
    assert len(session.exec(select(NotificationAttempt)).all()) == 3


def test_backoff_doubles_up_to_the_cap() -> None:
    waits = [notifications.backoff_seconds(n, 2.0, cap=60) for n in range(1, 8)]

    assert waits == [2, 4, 8, 16, 32, 60, 60]


def test_removed_subscriptions_get_nothing_and_are_not_found(
    session: Session, box: SecretBox, app: App, staging: Environment
) -> None:
    subscription = subscribe(session, box, app, "pipeline.succeeded")
    pipeline = make_pipeline(session, app, staging)
    pipeline.status = PipelineStatus.SUCCEEDED
    (queued,) = notifications.pipeline_notices(session=session, pipeline=pipeline, stage="run")
    notifications.remove_subscription(session=session, app=app, subscription_id=subscription.id)
    session.commit()

    outgoing = notifications.claim_attempt(
        session=session, box=box, notification_id=queued.notification_id, now=NOW, stale_after=60
    )

    assert outgoing is None
    notification = session.get(Notification, queued.notification_id)
    assert notification is not None and notification.status == "failed"
    assert notifications.pipeline_notices(session=session, pipeline=pipeline, stage="run") == []
    with pytest.raises(NotFound):
        notifications.get_subscription(session=session, app=app, subscription_id=subscription.id)


def test_a_generated_secret_is_returned_once_and_stored_encrypted(
    session: Session, box: SecretBox, app: App
) -> None:
    data = SubscriptionCreate(url="https://example.invalid/hooks", events=["pipeline.failed"])

    subscription, secret = notifications.create_subscription(
        session=session, box=box, app=app, data=data
    )

    assert secret is not None and secret not in subscription.secret
    assert box.decrypt(subscription.secret) == secret


def test_rotating_the_key_re_encrypts_signing_secrets(session: Session, app: App) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    subscribe(session, SecretBox(old), app, "pipeline.failed")

    rotated = notifications.rotate_subscription_secrets(
        session=session, box=SecretBox(new + b"," + old)
    )

    assert rotated == 1
    subscription = session.exec(select(Subscription)).one()
    assert SecretBox(new).decrypt(subscription.secret) == SECRET


def test_a_pending_notification_whose_message_was_lost_is_republished_once(
    session: Session, box: SecretBox, app: App, staging: Environment
) -> None:
    subscribe(session, box, app, "pipeline.failed")
    pipeline = make_pipeline(session, app, staging)
    pipeline.status = PipelineStatus.FAILED
    (queued,) = notifications.pipeline_notices(session=session, pipeline=pipeline, stage="build")
    session.commit()
    created = session.get(Notification, queued.notification_id)
    assert created is not None
    after = constants.NOTIFY_BACKOFF_MAX_SECONDS + 20

    early = created.created_at + timedelta(seconds=after - 1)
    assert notifications.stranded_notifications(session=session, now=early, after=after) == []
    late = created.created_at + timedelta(seconds=after + 1)
    again = notifications.stranded_notifications(session=session, now=late, after=after)
    assert [n.notification_id for n in again] == [created.id]
    soon = late + timedelta(seconds=1)
    assert notifications.stranded_notifications(session=session, now=soon, after=after) == []
