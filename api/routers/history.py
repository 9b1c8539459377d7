"""What ran when: `…/history?at=`, `…/deployments`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from shipyard.api.deps import SessionDep, StoreDep, read_in_one_thread
from shipyard.api.responses import ModelResponse
from shipyard.shared.exceptions import InvalidInput
from shipyard.shared.schemas import DeploymentPublic, HistoryPublic
from shipyard.shared.services import apps, history

router = APIRouter(prefix="/apps/{app}/environments/{env}", tags=["history"])


@router.get("/history", response_model=HistoryPublic)
async def live_at(
    app: str,
    env: str,
    store: StoreDep,
    at: Annotated[datetime, Query(description="ISO-8601 instant, with a time zone")],
) -> ModelResponse:
    """The release that was live at `at`; 404 if none was."""
    if at.tzinfo is None:
        raise InvalidInput("at must carry a time zone, e.g. 2026-11-24T14:00:00Z")
    found = await read_in_one_thread(
        store,
        lambda connection: history.live_at_by_names(
            connection=connection, app=app, environment=env, at=at
        ),
    )
    return ModelResponse(found)


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
