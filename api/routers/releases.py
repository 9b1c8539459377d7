"""Releases of an environment: `/v1/apps/{app}/environments/{env}/releases`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from shipyard.api.deps import SecretBoxDep, SessionDep
from shipyard.shared.schemas import ReleaseDiff, ReleasePublic
from shipyard.shared.services import apps, history, releases

router = APIRouter(prefix="/apps/{app}/environments/{env}/releases", tags=["releases"])


@router.get("")
def list_releases(app: str, env: str, session: SessionDep) -> list[ReleasePublic]:
    """The environment's releases, newest first."""
    environment = apps.environment_by_names(session=session, app=app, name=env)
    return releases.list_releases(session=session, environment=environment)


@router.get("/{version}/diff")
def diff(
    app: str,
    env: str,
    version: int,
    against: Annotated[int, Query(description="The release to compare with")],
    session: SessionDep,
    box: SecretBoxDep,
) -> ReleaseDiff:
    """What changed from v`against` to v`version`: artifact and config keys (secrets masked)."""
    environment = apps.environment_by_names(session=session, app=app, name=env)
    return history.diff_releases(
        session=session, environment=environment, version=version, against=against, box=box
    )
