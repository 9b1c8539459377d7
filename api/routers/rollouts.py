"""Canary releases under way: `GET …/canary`, `POST …/canary/promote`, `POST …/canary/abort`."""

from __future__ import annotations

from fastapi import APIRouter, status

from shipyard.api.auth import PrincipalDep, deploy_scoped
from shipyard.api.deps import SessionDep
from shipyard.shared.schemas import RolloutPublic
from shipyard.shared.services import apps, rollouts

router = APIRouter(prefix="/apps/{app}/environments/{env}/canary", tags=["rollouts"])


@router.get("")
def get_rollout(app: str, env: str, session: SessionDep) -> RolloutPublic:
    """The canary or watch under way: its plan, state, share and each step's figures; 404 when
    none runs."""
    environment = apps.environment_by_names(session=session, app=app, name=env)
    return rollouts.get_current(session=session, environment=environment)


@router.post("/promote", status_code=status.HTTP_202_ACCEPTED)
@deploy_scoped
def promote(app: str, env: str, session: SessionDep, principal: PrincipalDep) -> RolloutPublic:
    """Send all the requests to the new release now (a watch: end it, keeping the new release);
    the run stage takes it at its next look. 409 when no canary or watch runs."""
    principal.require_deploy(env)
    environment = apps.environment_by_names(session=session, app=app, name=env)
    view = rollouts.give_command(session=session, environment=environment, command="promote")
    session.commit()
    return view


@router.post("/abort", status_code=status.HTTP_202_ACCEPTED)
@deploy_scoped
def abort(app: str, env: str, session: SessionDep, principal: PrincipalDep) -> RolloutPublic:
    """Give the live release all the requests back and stop the new one, failing its pipeline
    (a watch: roll back to the previous release at once). 409 when no canary or watch runs."""
    principal.require_deploy(env)
    environment = apps.environment_by_names(session=session, app=app, name=env)
    view = rollouts.give_command(session=session, environment=environment, command="abort")
    session.commit()
    return view
