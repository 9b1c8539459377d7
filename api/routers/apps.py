"""Apps: `/v1/apps`."""

from __future__ import annotations

from fastapi import APIRouter, status

from shipyard.api.deps import SessionDep
from shipyard.shared.schemas import AppCreate, AppPublic, AppUpdate
from shipyard.shared.services import apps

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
