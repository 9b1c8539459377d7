"""Outgoing notifications: per-app subscriptions, the signed JSON body each event becomes, and the
record of every attempt to deliver it.

Notification rows are written in the same transaction as the fact they report (a stage's result,
a skipped schedule) and published after it commits; a worker of the `notify` queue POSTs them.
A receiver that fails is retried with backoff on that queue and never touches a pipeline.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, get_args

import structlog
from sqlalchemy import and_, func, or_, update
from sqlalchemy.exc import SQLAlchemyError
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
    Pipeline,
    PipelineStatus,
    Release,
    Subscription,
    utcnow,
)
from shipyard.shared.schemas import (
    NotificationAttemptPublic,
    NotificationEvent,
    NotificationPublic,
    SubscriptionCreate,
)
from shipyard.shared.services.webhooks import new_secret, sign
from shipyard.shared.stages import PipelineKind, Stage

log = structlog.get_logger(__name__)
EVENTS: tuple[str, ...] = get_args(NotificationEvent)
_KIND_EVENTS = {
    PipelineKind.ROLLBACK: "rollback.finished",
    PipelineKind.PROMOTION: "promotion.finished",
    PipelineKind.SCALE: "scale.finished",
    PipelineKind.FAILOVER: "failover.finished",
    PipelineKind.RESTART: "restart.finished",
}


# --- subscriptions -----------------------------------------------------------------------------


def create_subscription(
    *, session: Session, box: SecretBox, app: App, data: SubscriptionCreate
) -> tuple[Subscription, str | None]:
    """Subscribe `data.url` to `app`'s events; returns it and the secret if one was generated."""
    generated = new_secret() if data.secret is None else None
    subscription = Subscription(
        app_id=app.id,
        url=data.url,
        events=sorted(set(data.events)),
        secret=box.encrypt(data.secret or generated or ""),
    )
    session.add(subscription)
    session.flush()
    return subscription, generated


def list_subscriptions(*, session: Session, app: App) -> list[Subscription]:
    """`app`'s subscriptions, oldest first."""
    return _subscriptions_of(session, app.id)


def _subscriptions_of(session: Session, app_id: uuid.UUID) -> list[Subscription]:
    query = select(Subscription).where(
        Subscription.app_id == app_id, col(Subscription.deleted_at).is_(None)
    )
    return list(session.exec(query.order_by(col(Subscription.created_at))))


def get_subscription(*, session: Session, app: App, subscription_id: uuid.UUID) -> Subscription:
    """A subscription of `app` that was not removed, or NotFound."""
    subscription = session.get(Subscription, subscription_id)
    if subscription is None or subscription.app_id != app.id or subscription.deleted_at:
        raise NotFound(f"subscription {subscription_id} of app {app.name!r} not found")
    return subscription


def remove_subscription(*, session: Session, app: App, subscription_id: uuid.UUID) -> Subscription:
    """Stop notifying a subscription; what it was sent stays on record."""
    subscription = get_subscription(session=session, app=app, subscription_id=subscription_id)
    subscription.deleted_at = utcnow()
    session.add(subscription)
    session.flush()
    return subscription


def notifications_of(
    *, session: Session, subscription: Subscription, limit: int
) -> list[NotificationPublic]:
    """The subscription's notifications with every attempt, newest first."""
    rows = session.exec(
        select(Notification)
        .where(Notification.subscription_id == subscription.id)
        .order_by(col(Notification.created_at).desc())
        .limit(limit)
    ).all()
    attempts: dict[uuid.UUID, list[NotificationAttemptPublic]] = {n.id: [] for n in rows}
    for attempt in session.exec(  # every attempt of these notifications: one query
        select(NotificationAttempt)
        .where(col(NotificationAttempt.notification_id).in_(list(attempts)))
        .order_by(col(NotificationAttempt.number))
    ):
        attempts[attempt.notification_id].append(
            NotificationAttemptPublic.model_validate(attempt, from_attributes=True)
        )
    return [
        NotificationPublic(
            **notification.model_dump(exclude={"subscription_id", "body", "attempts"}),
            attempts=attempts[notification.id],
        )
        for notification in rows
    ]


def rotate_subscription_secrets(*, session: Session, box: SecretBox) -> int:
    """Re-encrypt every signing secret under `box`'s newest key; returns how many."""
    subscriptions = list(session.exec(select(Subscription)))
    for subscription in subscriptions:
        subscription.secret = box.rotate(subscription.secret)
        session.add(subscription)
    session.flush()
    return len(subscriptions)


# --- events become notifications ---------------------------------------------------------------


def emit(
    *,
    session: Session,
    app: App,
    event: str,
    data: dict[str, Any],
    subscriptions: list[Subscription] | None = None,
) -> list[NotificationQueued]:
    """A notification of `event` for each of `app`'s subscriptions to it; publish after commit.

    `subscriptions` are the app's, when the caller has read them already.
    Written in a savepoint: should it fail, the fact being reported is still recorded.
    """
    if subscriptions is None:
        subscriptions = list_subscriptions(session=session, app=app)
    subscribed = [s for s in subscriptions if event in s.events]
    if not subscribed:
        return []
    occurred_at = utcnow().isoformat()
    queued = []
    try:
        with session.begin_nested():
            for subscription in subscribed:
                notification = Notification(subscription_id=subscription.id, event=event, body="")
                payload = {
                    "id": str(notification.id),
                    "event": event,
                    "app": app.name,
                    "occurred_at": occurred_at,
                    **data,
                }
                notification.body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
                session.add(notification)
                queued.append(NotificationQueued(notification_id=notification.id))
            session.flush()
    except SQLAlchemyError:
        log.exception("notify.not_recorded", event_name=event)
        return []
    return queued


def pipeline_notices(
    *, session: Session, pipeline: Pipeline, stage: Stage
) -> list[NotificationQueued]:
    """The events a stage's recorded result amounts to, as notifications (same transaction).

    Costs nothing when the stage amounts to no event, and one query when nobody subscribed.
    """
    finished = pipeline.status in (PipelineStatus.SUCCEEDED, PipelineStatus.FAILED)
    events = []
    if stage == Stage.RELEASE and pipeline.status != PipelineStatus.FAILED and pipeline.release_id:
        events.append("release.created")
    if finished:
        events.append(f"pipeline.{pipeline.status}")
        kind_event = _KIND_EVENTS.get(PipelineKind(pipeline.kind))
        if kind_event is not None:
            events.append(kind_event)
    if not events:
        return []
    subscriptions = _subscriptions_of(session, pipeline.app_id)
    if not any(event in s.events for s in subscriptions for event in events):
        return []
    app = session.get(App, pipeline.app_id)
    if app is None:
        return []
    data = _pipeline_data(session, pipeline)
    return [
        notice
        for event in events
        for notice in emit(
            session=session, app=app, event=event, data=data, subscriptions=subscriptions
        )
    ]


def _pipeline_data(session: Session, pipeline: Pipeline) -> dict[str, Any]:
    environment = session.get(Environment, pipeline.environment_id)
    data: dict[str, Any] = {
        "environment": environment.name if environment else None,
        "pipeline": {
            "id": str(pipeline.id),
            "kind": pipeline.kind,
            "status": pipeline.status,
            "trigger": pipeline.trigger,
            "ref": pipeline.ref,
            "artifact_id": pipeline.artifact_id,
            "deployment_id": str(pipeline.deployment_id) if pipeline.deployment_id else None,
            "error": pipeline.error,
        },
    }
    if pipeline.process_type is not None:  # a restart of that process type only
        data["pipeline"]["process_type"] = pipeline.process_type
    release = session.get(Release, pipeline.release_id) if pipeline.release_id else None
    if release is not None:
        data["release"] = {
            "id": str(release.id),
            "version": release.version,
            "artifact_id": release.artifact_id,
            "cause": release.cause,
        }
    return data


# --- delivery ----------------------------------------------------------------------------------


class DeliveryState(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # the receiver failed; try again after the backoff
    FAILED = "failed"  # the last attempt failed too: given up


@dataclass(frozen=True)
class Outgoing:
    """One attempt to make: where, the exact body, and the signed headers."""

    notification_id: uuid.UUID
    number: int
    url: str
    body: bytes
    headers: dict[str, str]


def claim_attempt(
    *,
    session: Session,
    box: SecretBox,
    notification_id: uuid.UUID,
    now: datetime,
    stale_after: float,
) -> Outgoing | None:
    """Take the next attempt of a notification; None if there is nothing to send now.

    The conditional UPDATE marks the notification `sending`: a duplicate message finds it so and
    does nothing, unless that attempt's worker died (claimed longer than `stale_after` ago).
    """
    notification = session.get(Notification, notification_id)
    if notification is None:
        return None
    subscription = session.get(Subscription, notification.subscription_id)
    if subscription is None or subscription.deleted_at is not None:
        if notification.status in ("pending", "sending"):
            _finish(notification, DeliveryState.FAILED)
            session.add(notification)
            session.flush()
        return None
    claimable = or_(
        col(Notification.status) == "pending",
        and_(
            col(Notification.status) == "sending",
            col(Notification.claimed_at) < now - timedelta(seconds=stale_after),
        ),
    )
    claimed = session.execute(
        update(Notification)
        .where(col(Notification.id) == notification_id, claimable)
        .values(status="sending", attempts=col(Notification.attempts) + 1, claimed_at=now)
    )
    if claimed.rowcount == 0:  # type: ignore[attr-defined]
        return None
    session.refresh(notification)
    body = notification.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Shipyard-Notifications/1",
        "X-Shipyard-Event": notification.event,
        "X-Shipyard-Delivery": str(notification.id),
        constants.SIGNATURE_HEADER: sign(box.decrypt(subscription.secret), body),
    }
    return Outgoing(notification.id, notification.attempts, subscription.url, body, headers)


def record_attempt(
    *,
    session: Session,
    outgoing: Outgoing,
    status_code: int | None,
    error: str | None,
    duration_ms: float,
    max_attempts: int,
) -> DeliveryState:
    """Record one attempt; a 2xx delivers, anything else retries until `max_attempts`."""
    session.add(
        NotificationAttempt(
            notification_id=outgoing.notification_id,
            number=outgoing.number,
            status_code=status_code,
            error=error,
            duration_ms=round(duration_ms, 3),
        )
    )
    notification = session.get(Notification, outgoing.notification_id)
    assert notification is not None
    if status_code is not None and 200 <= status_code < 300:
        state = DeliveryState.DELIVERED
    elif outgoing.number >= max_attempts:
        state = DeliveryState.FAILED
    else:
        state = DeliveryState.RETRY
    if state == DeliveryState.RETRY:
        notification.status = "pending"
        notification.claimed_at = None
    else:
        _finish(notification, state)
    session.add(notification)
    session.flush()
    return state


def _finish(notification: Notification, state: DeliveryState) -> None:
    notification.status = state.value
    notification.claimed_at = None
    notification.finished_at = utcnow()


def backoff_seconds(
    attempt: int, base: float, cap: float = constants.NOTIFY_BACKOFF_MAX_SECONDS
) -> float:
    """The wait after failed attempt number `attempt`: base, 2×base, 4×base … up to `cap`."""
    return float(min(cap, base * 2 ** (attempt - 1)))


def stranded_notifications(
    *, session: Session, now: datetime, after: float
) -> list[NotificationQueued]:
    """Pending notifications untouched for `after` seconds: their message was lost (a flushed
    or restarted Redis took a queued delivery or a retry with it). Returns the events to publish
    again after commit; `after` exceeds the longest backoff, so a retry still on its way is
    never doubled."""
    cutoff = now - timedelta(seconds=after)
    last_touched = func.coalesce(col(Notification.claimed_at), col(Notification.created_at))
    rows = session.exec(
        select(Notification).where(Notification.status == "pending", last_touched < cutoff)
    ).all()
    for notification in rows:
        notification.claimed_at = now  # republished at most once per `after`
        session.add(notification)
    session.flush()
    return [NotificationQueued(notification_id=n.id) for n in rows]
