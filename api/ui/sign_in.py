"""Signing in to the dashboard with an API token, and signing out."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from shipyard.api.auth import Unauthorized, principal_for
from shipyard.api.deps import SessionDep, SettingsDep
from shipyard.api.ui import sessions
from shipyard.api.ui.rendering import PageRoute, ViewerDep, check_csrf, may_read, page, safe_next
from shipyard.shared.services import dashboard_sessions
from shipyard.shared.settings import Settings

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)


def _form(
    request: Request, settings: Settings, target: str, message: str | None, status_code: int
) -> HTMLResponse:
    csrf = sessions.new_csrf()
    context = {"viewer": None, "csrf": csrf, "next": safe_next(target), "message": message}
    response = page(request, "sign_in.html", context, status_code=status_code)
    sessions.give_sign_in_csrf(request, response, settings, csrf)
    return response


@router.get("/sign-in")
def sign_in_form(
    request: Request,
    settings: SettingsDep,
    target: Annotated[str, Query(alias="next", max_length=2048)] = "/ui",
) -> HTMLResponse:
    """The sign-in form."""
    return _form(request, settings, target, None, 200)


@router.post("/sign-in")
def sign_in(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str, Form(max_length=512)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    target: Annotated[str, Form(alias="next", max_length=2048)] = "/ui",
) -> Response:
    """Exchange an API token for a session cookie; the form again, with why, if it is refused."""
    expected = sessions.read_sign_in_csrf(request, settings)
    if expected is None or not sessions.same_token(csrf, expected):
        message = "This sign-in form expired or did not come from this site; please try again."
        return _form(request, settings, target, message, 403)
    if not token.strip():
        return _form(request, settings, target, "Enter an API token.", 422)
    try:
        principal = principal_for(request, session, token.strip())
    except Unauthorized:
        return _form(request, settings, target, "That token is not valid, or was revoked.", 401)
    if not may_read(principal):
        message = "That token has no scope that reads the dashboard (read, deploy:…, admin)."
        return _form(request, settings, target, message, 403)
    lifetime = timedelta(seconds=sessions.SESSION_SECONDS)
    session_id = dashboard_sessions.open_session(session=session, lifetime=lifetime)
    session.commit()
    response = RedirectResponse(safe_next(target), status_code=303)
    sessions.start_session(request, response, settings, token.strip(), session_id)
    return response


@router.post("/sign-out")
def sign_out(
    viewer: ViewerDep, session: SessionDep, csrf: Annotated[str, Form(max_length=200)] = ""
) -> RedirectResponse:
    """End the session, on the server as in the browser."""
    check_csrf(viewer, csrf)
    dashboard_sessions.close_session(session=session, session_id=viewer.session_id)
    session.commit()
    response = RedirectResponse("/ui/sign-in", status_code=303)
    sessions.end_session(response)
    return response
