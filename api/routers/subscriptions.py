"""Outgoing notifications: `/v1/apps/{app}/subscriptions` (admin), and what each was sent."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from shipyard.api.deps import SecretBoxDep, SessionDep
from shipyard.shared.schemas import (
    NotificationPublic,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionPublic,
)
from shipyard.shared.services import apps, notifications

router = APIRouter(tags=["subscriptions"])


@router.post("/apps/{app}/subscriptions", status_code=status.HTTP_201_CREATED)
def create_subscription(
    app: str, data: SubscriptionCreate, session: SessionDep, box: SecretBoxDep
) -> SubscriptionCreated:
    """POST the app's `events` to `url`, signed; a generated secret is shown this once."""
    owner = apps.get_app(session=session, name=app)
    subscription, generated = notifications.create_subscription(
        session=session, box=box, app=owner, data=data
    )
    session.commit()
    public = SubscriptionPublic.model_validate(subscription, from_attributes=True)
    return SubscriptionCreated(**public.model_dump(), secret=generated)


@router.get("/apps/{app}/subscriptions")
def list_subscriptions(app: str, session: SessionDep) -> list[SubscriptionPublic]:
    """The app's subscriptions (never their secrets)."""
    owner = apps.get_app(session=session, name=app)
    return [
        SubscriptionPublic.model_validate(subscription, from_attributes=True)
        for subscription in notifications.list_subscriptions(session=session, app=owner)
    ]


@router.delete("/apps/{app}/subscriptions/{subscription_id}")
def remove_subscription(
    app: str, subscription_id: uuid.UUID, session: SessionDep
) -> SubscriptionPublic:
    """Stop notifying a subscription; pending notifications to it are dropped."""
    owner = apps.get_app(session=session, name=app)
    subscription = notifications.remove_subscription(
        session=session, app=owner, subscription_id=subscription_id
    )
    session.commit()
    return SubscriptionPublic.model_validate(subscription, from_attributes=True)


@router.get("/apps/{app}/subscriptions/{subscription_id}/notifications")
def list_notifications(
    app: str,
    subscription_id: uuid.UUID,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> list[NotificationPublic]:
    """What the subscription was sent, newest first, with every attempt (status code, time)."""
    owner = apps.get_app(session=session, name=app)
    subscription = notifications.get_subscription(
        session=session, app=owner, subscription_id=subscription_id
    )
    return notifications.notifications_of(session=session, subscription=subscription, limit=limit)
