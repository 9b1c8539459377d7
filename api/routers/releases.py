"""Releases of an environment: `/v1/apps/{app}/environments/{env}/releases`."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import SessionDep
from shared.schemas import ReleasePublic
from shared.services import apps, releases

router = APIRouter(prefix="/apps/{app}/environments/{env}/releases", tags=["releases"])


@router.get("")
def list_releases(app: str, env: str, session: SessionDep) -> list[ReleasePublic]:
    """The environment's releases, newest first."""
    environment = apps.get_environment(
        session=session, app=apps.get_app(session=session, name=app), name=env
    )
    return releases.list_releases(session=session, environment=environment)
