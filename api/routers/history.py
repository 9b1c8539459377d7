"""What ran when: `…/history?at=`, `…/deployments`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from shipyard.api.deps import SessionDep
from shipyard.shared.exceptions import InvalidInput
from shipyard.shared.schemas import DeploymentPublic, HistoryPublic
from shipyard.shared.services import apps, history

router = APIRouter(prefix="/apps/{app}/environments/{env}", tags=["history"])


@router.get("/history")
def live_at(
    app: str,
    env: str,
    session: SessionDep,
    at: Annotated[datetime, Query(description="ISO-8601 instant, with a time zone")],
) -> HistoryPublic:
    """The release that was live at `at`; 404 if none was."""
    if at.tzinfo is None:
        raise InvalidInput("at must carry a time zone, e.g. 2026-11-24T14:00:00Z")
    environment = apps.environment_by_names(session=session, app=app, name=env)
    return history.live_at(session=session, environment=environment, at=at)


@router.get("/deployments")
def list_deployments(
    app: str,
    env: str,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeploymentPublic]:
    """The environment's deployments, newest first."""
    environment = apps.environment_by_names(session=session, app=app, name=env)
    return history.list_deployments(session=session, environment=environment, limit=limit)
