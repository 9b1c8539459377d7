"""The dashboard's actions: deploy a ref, roll back, promote, and promote or abort a canary. The
same scopes and the same services as the JSON routes (`POST /v1/apps/{app}/pipelines`,
`…/rollback`, `…/promotions`, `…/canary/promote`, `…/canary/abort`); each form carries the
session's CSRF token, and each answers with the pipeline's live page (a canary's command: the
environment's page)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form
from fastapi.responses import RedirectResponse

from shipyard.api.deps import PublisherDep, SessionDep
from shipyard.api.ui.rendering import PageRoute, ViewerDep, check_csrf
from shipyard.shared.schemas import PipelineCreate, PipelinePublic, PromotionCreate, RollbackCreate
from shipyard.shared.services import actions, apps, pipelines, rollouts

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

# What the history shows as the trigger of a pipeline started from the dashboard.
TRIGGER = "dashboard"

CsrfField = Annotated[str, Form(max_length=200)]


def _follow(pipeline: PipelinePublic) -> RedirectResponse:
    return RedirectResponse(f"/ui/pipelines/{pipeline.id}", status_code=303)


@router.post("/apps/{app}/deploy")
def deploy(
    app: str,
    viewer: ViewerDep,
    session: SessionDep,
    publish: PublisherDep,
    csrf: CsrfField = "",
    environment: Annotated[str, Form(max_length=63)] = "",
    ref: Annotated[str, Form(max_length=255)] = "HEAD",
) -> RedirectResponse:
    """Build `ref`, release it and run it in `environment` (needs deploy:<environment>)."""
    check_csrf(viewer, csrf)
    viewer.principal.require_deploy(environment)
    data = PipelineCreate(environment=environment, ref=ref.strip() or "HEAD")
    pipeline = actions.deploy(
        session=session,
        app=app,
        environment=data.environment,
        ref=data.ref,
        trigger=TRIGGER,
        requested_by=viewer.principal.name,
    )
    return _follow(pipelines.launch(session=session, pipeline=pipeline, publish=publish))


@router.post("/apps/{app}/environments/{env}/rollback")
def rollback(
    app: str,
    env: str,
    viewer: ViewerDep,
    session: SessionDep,
    publish: PublisherDep,
    csrf: CsrfField = "",
    to_version: Annotated[str, Form(max_length=20)] = "",
) -> RedirectResponse:
    """Run an earlier release again (default: the one live before this); needs deploy:<env>."""
    check_csrf(viewer, csrf)
    viewer.principal.require_deploy(env)
    data = RollbackCreate.model_validate({"to_version": to_version.strip() or None})
    pipeline = actions.rollback(
        session=session,
        app=app,
        environment=env,
        to_version=data.to_version,
        trigger=TRIGGER,
        requested_by=viewer.principal.name,
    )
    return _follow(pipelines.launch(session=session, pipeline=pipeline, publish=publish))


@router.post("/apps/{app}/promote")
def promote(
    app: str,
    viewer: ViewerDep,
    session: SessionDep,
    publish: PublisherDep,
    csrf: CsrfField = "",
    source: Annotated[str, Form(alias="from", max_length=63)] = "",
    target: Annotated[str, Form(alias="to", max_length=63)] = "",
) -> RedirectResponse:
    """Release what is live in `from` to `to`, with `to`'s config (needs deploy:<to>)."""
    check_csrf(viewer, csrf)
    viewer.principal.require_deploy(target)
    data = PromotionCreate.model_validate({"from": source, "to": target})
    pipeline = actions.promote(
        session=session,
        app=app,
        source=data.source,
        target=data.target,
        trigger=TRIGGER,
        requested_by=viewer.principal.name,
    )
    return _follow(pipelines.launch(session=session, pipeline=pipeline, publish=publish))


@router.post("/apps/{app}/environments/{env}/canary/{command}")
def command_rollout(
    app: str,
    env: str,
    command: Literal["promote", "abort"],
    viewer: ViewerDep,
    session: SessionDep,
    csrf: CsrfField = "",
) -> RedirectResponse:
    """Promote or abort the canary or watch under way (needs deploy:<env>); 409 when none runs."""
    check_csrf(viewer, csrf)
    viewer.principal.require_deploy(env)
    environment = apps.environment_by_names(session=session, app=app, name=env)
    rollouts.give_command(session=session, environment=environment, command=command)
    session.commit()
    return RedirectResponse(f"/ui/apps/{app}/environments/{env}", status_code=303)
