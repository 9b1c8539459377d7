"""Artifacts of an app: `/v1/apps/{app}/artifacts`."""

from __future__ import annotations

from fastapi import APIRouter

from shipyard.api.deps import SessionDep
from shipyard.shared.schemas import ArtifactPublic
from shipyard.shared.services import apps, builds

router = APIRouter(prefix="/apps/{app}/artifacts", tags=["artifacts"])


@router.get("")
def list_artifacts(app: str, session: SessionDep) -> list[ArtifactPublic]:
    """Every artifact built for the app, newest first."""
    return builds.list_artifacts(session=session, app=apps.get_app(session=session, name=app))
