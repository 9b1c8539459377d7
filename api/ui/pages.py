"""The dashboard's read pages: apps, an app's environments, an environment's history, a diff of
two releases, and what ran at an instant."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from shipyard.api.deps import SecretBoxDep, SessionDep, SettingsDep
from shipyard.api.errors import status_for
from shipyard.api.ui.rendering import PageRoute, ViewerDep, page
from shipyard.shared.exceptions import ShipyardError
from shipyard.shared.services import (
    activity,
    apps,
    certificates,
    history,
    one_offs,
    releases,
    rollouts,
)

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

# Rows of an environment's deployment history and pipelines a page shows.
HISTORY_ROWS = 50
PIPELINE_ROWS = 10
RUN_ROWS = 10  # the latest one-off commands (`shipyard runs` has more)


@router.get("")
def apps_index(
    request: Request, viewer: ViewerDep, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """Every app, each environment with its live release."""
    overview = [
        (app, activity.app_summary(session=session, settings=settings, app=app))
        for app in apps.list_apps(session=session)
    ]
    return page(request, "apps.html", {"viewer": viewer, "overview": overview})


@router.get("/apps/{app}")
def app_page(
    app: str, request: Request, viewer: ViewerDep, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """An app's environments: live release, processes, and the deploy and promote forms."""
    owner = apps.get_app(session=session, name=app)
    summaries = activity.app_summary(session=session, settings=settings, app=owner)
    names = [summary.environment.name for summary in summaries]
    deployable = [name for name in names if viewer.can_deploy(name)]
    context = {
        "viewer": viewer,
        "app": owner,
        "summaries": summaries,
        "deployable": deployable,
        "promotable": deployable,
    }
    return page(request, "app.html", context)


@router.get("/apps/{app}/environments/{env}")
def environment_page(
    app: str,
    env: str,
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    settings: SettingsDep,
) -> HTMLResponse:
    """An environment: what is live (and a canary or watch under way), its domains'
    certificates, its history and releases, and its recent pipelines."""
    owner = apps.get_app(session=session, name=app)
    environment = apps.get_environment(session=session, app=owner, name=env)
    release_entries = activity.release_history(session=session, environment=environment)
    context = {
        "viewer": viewer,
        "app": owner,
        "can_deploy": viewer.can_deploy(env),
        "summary": activity.environment_summary(
            session=session, settings=settings, app=owner, environment=environment
        ),
        "deployments": activity.deployment_history(
            session=session, environment=environment, limit=HISTORY_ROWS
        ),
        "releases": release_entries,
        "versions": [entry.release.version for entry in release_entries],
        "pipelines": activity.recent_pipelines(
            session=session, environment=environment, limit=PIPELINE_ROWS
        ),
        "runs": [
            one_offs.view(session=session, run=run)
            for run in one_offs.of_environment(
                session=session, environment=environment, limit=RUN_ROWS
            )
        ],
        "certificates": certificates.of_environment(session=session, environment=environment),
        "rollout": rollouts.current(session=session, environment=environment),
    }
    return page(request, "environment.html", context)


def _version(value: str, label: str) -> int:
    try:
        version = int(value)
    except ValueError:
        raise _Refused(f"choose the {label} release (a version number such as 3)") from None
    if version < 1:
        raise _Refused(f"the {label} release must be v1 or later")
    return version


class _Refused(Exception):
    """Input a form section answers with a message in place of a result."""


@router.get("/apps/{app}/environments/{env}/diff")
def diff_page(
    app: str,
    env: str,
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    box: SecretBoxDep,
    version: Annotated[str, Query(max_length=20)] = "",
    against: Annotated[str, Query(max_length=20)] = "",
) -> HTMLResponse:
    """What changed between two releases: artifact and config keys, secrets masked."""
    environment = apps.environment_by_names(session=session, app=app, name=env)
    versions = [r.version for r in releases.list_releases(session=session, environment=environment)]
    context = {"viewer": viewer, "app": app, "env": env, "versions": versions, "error": None}
    status = 200
    try:
        new, old = _version(version, "newer"), _version(against, "older")
        context |= {"version": new, "against": old}
        context["diff"] = history.diff_releases(
            session=session, environment=environment, version=new, against=old, box=box
        )
    except _Refused as exc:
        context["error"], status = str(exc), 422
    except ShipyardError as exc:
        context["error"], status = exc.message, status_for(exc)
    return page(request, "diff.html", context, status_code=status)


def _instant(value: str) -> datetime:
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _Refused(
            f"{value.strip()[:40]!r} is not an ISO-8601 instant, e.g. 2026-11-24T14:00:00Z"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@router.get("/apps/{app}/environments/{env}/at")
def at_page(
    app: str,
    env: str,
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    at: Annotated[str, Query(max_length=64)] = "",
) -> HTMLResponse:
    """The release that was live at an instant (UTC unless the instant says otherwise)."""
    environment = apps.environment_by_names(session=session, app=app, name=env)
    context = {"viewer": viewer, "app": app, "env": env, "at": at, "error": None, "found": None}
    status = 200
    try:
        context["found"] = history.live_at(
            session=session, environment=environment, at=_instant(at)
        )
    except _Refused as exc:
        context["error"], status = str(exc), 422
    except ShipyardError as exc:
        context["error"], status = exc.message, status_for(exc)
    return page(request, "at.html", context, status_code=status)
