"""Apps: `/v1/apps`."""

from __future__ import annotations

from typing import Annotated

import redis
from fastapi import APIRouter, Query, status

from shipyard.api.deps import BrokerRedisDep, SessionDep, SettingsDep
from shipyard.shared import one_off_stream
from shipyard.shared.exceptions import ServiceUnavailable
from shipyard.shared.schemas import AppCreate, AppDestroyedPublic, AppPublic, AppUpdate
from shipyard.shared.services import apps, destroy

router = APIRouter(prefix="/apps", tags=["apps"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_app(data: AppCreate, session: SessionDep) -> AppPublic:
    """Register an app: a git repository (path or URL), an optional subdirectory, a builder."""
    app = apps.create_app(session=session, data=data)
    session.commit()
    return AppPublic.model_validate(app, from_attributes=True)


@router.get("")
def list_apps(session: SessionDep) -> list[AppPublic]:
    """Every app."""
    return [
        AppPublic.model_validate(a, from_attributes=True) for a in apps.list_apps(session=session)
    ]


@router.get("/{app}")
def get_app(app: str, session: SessionDep) -> AppPublic:
    """One app."""
    return AppPublic.model_validate(apps.get_app(session=session, name=app), from_attributes=True)


@router.patch("/{app}")
def update_app(app: str, data: AppUpdate, session: SessionDep) -> AppPublic:
    """Change the app's repository, folder or builder (admin); its next build uses them."""
    owner = apps.get_app(session=session, name=app)
    updated = apps.update_app(session=session, app=owner, data=data)
    session.commit()
    return AppPublic.model_validate(updated, from_attributes=True)


@router.delete("/{app}")
def destroy_app(
    app: str,
    session: SessionDep,
    settings: SettingsDep,
    broker: BrokerRedisDep,
    confirm: Annotated[str | None, Query(max_length=63)] = None,
) -> AppDestroyedPublic:
    """Destroy the app (admin; `confirm` = its name): its processes stop, its host names and
    domains stop answering, its schedules and webhooks stop; its records stay; 409 while one of
    its pipelines is under way."""
    owner = apps.get_app(session=session, name=app)
    destroyed = destroy.destroy_app(session=session, app=owner, confirm=confirm)
    if destroyed.one_offs:
        if broker is None:
            raise ServiceUnavailable("the broker is unavailable to end its one-offs; try again")
        try:
            for run_id in destroyed.one_offs:
                one_off_stream.request_cancel(broker, settings.broker_namespace, run_id)
        except redis.RedisError as exc:
            raise ServiceUnavailable("the broker is unavailable; try again shortly") from exc
    session.commit()
    assert destroyed.app.destroyed_at is not None
    return AppDestroyedPublic(
        name=app,
        environments=destroyed.environments,
        stopped=destroyed.stopped,
        one_offs_cancelled=len(destroyed.one_offs),
        destroyed_at=destroyed.app.destroyed_at,
    )
