"""Environments of an app: `/v1/apps/{app}/environments`, and what runs in each."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import SessionDep
from shared.exceptions import NotFound
from shared.schemas import CurrentPublic, EnvironmentCreate, EnvironmentPublic, StoragePublic
from shared.services import apps, deployments

router = APIRouter(prefix="/apps/{app}/environments", tags=["environments"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_environment(app: str, data: EnvironmentCreate, session: SessionDep) -> EnvironmentPublic:
    """Add an environment (staging, production, …) with its runner and health check."""
    owner = apps.get_app(session=session, name=app)
    environment = apps.create_environment(session=session, app=owner, data=data)
    session.commit()
    return EnvironmentPublic.model_validate(environment, from_attributes=True)


@router.get("")
def list_environments(app: str, session: SessionDep) -> list[EnvironmentPublic]:
    """The app's environments."""
    owner = apps.get_app(session=session, name=app)
    return [
        EnvironmentPublic.model_validate(e, from_attributes=True)
        for e in apps.list_environments(session=session, app=owner)
    ]


@router.get("/{env}/current")
def current(app: str, env: str, session: SessionDep) -> CurrentPublic:
    """The live release, its deployment and its processes; 404 when nothing is live."""
    environment = apps.environment_by_names(session=session, app=app, name=env)
    live = deployments.current(session=session, environment=environment)
    if live is None:
        raise NotFound(f"nothing is live in {app}/{env} yet")
    return live


@router.get("/{env}/storage")
def storage(app: str, env: str, session: SessionDep) -> StoragePublic:
    """The environment's persistent storage: the variable apps read and where it is."""
    environment = apps.environment_by_names(session=session, app=app, name=env)
    return deployments.storage(session=session, environment=environment)
