"""What every dashboard page shares: the templates, the signed-in viewer, and errors as pages.

Errors become HTML pages with the right status (never JSON, never a traceback); a request
without a session is sent to the sign-in page.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError

from shipyard.api.auth import ADMIN, Forbidden, Principal, Unauthorized, principal_for
from shipyard.api.deps import SessionDep, SettingsDep
from shipyard.api.errors import status_for
from shipyard.api.ui import sessions
from shipyard.shared.exceptions import ShipyardError
from shipyard.shared.services import dashboard_sessions

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
# Pages may load scripts and styles from the dashboard itself only.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class SignInRequired(Exception):
    """No valid session: the page redirects to the sign-in form."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in person: their token's principal and the session's CSRF token."""

    principal: Principal
    csrf: str
    session_id: str

    def can_deploy(self, environment: str) -> bool:
        return self.principal.can_deploy(environment)


def get_viewer(request: Request, session: SessionDep, settings: SettingsDep) -> Viewer:
    """The viewer of the session cookie; SignInRequired without a valid one."""
    data = sessions.read_session(request, settings)
    if data is None or not dashboard_sessions.session_is_live(
        session=session, session_id=data.session_id
    ):
        raise SignInRequired  # no cookie, or one whose session was signed out or expired
    try:
        principal = principal_for(request, session, data.token)
    except Unauthorized as exc:  # revoked since sign-in
        raise SignInRequired from exc
    if not may_read(principal):
        raise Forbidden("this token has no scope that reads the dashboard (read, deploy:…, admin)")
    return Viewer(principal=principal, csrf=data.csrf, session_id=data.session_id)


ViewerDep = Annotated[Viewer, Depends(get_viewer)]


def may_read(principal: Principal) -> bool:
    """Whether a token may see the dashboard: as the JSON API's GETs, `read`, `deploy:…` or
    `admin` (a scope for one purpose only, such as scraping metrics, does not do)."""
    return any(s in ("read", ADMIN) or s.startswith("deploy:") for s in principal.scopes)


def check_csrf(viewer: Viewer, presented: str) -> None:
    """Refuse (403) a form whose CSRF token is not the session's."""
    if not sessions.same_token(presented, viewer.csrf):
        raise Forbidden("this form's CSRF token is missing or wrong: reload the page and try again")


def page(
    request: Request,
    name: str,
    context: dict[str, Any],
    status_code: int = 200,
) -> HTMLResponse:
    """Render template `name` as a page."""
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(_SECURITY_HEADERS)
    return response


def error_page(request: Request, status_code: int, message: str) -> HTMLResponse:
    """A page saying what went wrong, with the status it deserves."""
    return page(
        request, "error.html", {"status": status_code, "message": message}, status_code=status_code
    )


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a dashboard path, never another site."""
    if target and target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui"


def _validation_message(errors: list[Any]) -> str:
    parts = []
    for error in errors:
        location = ".".join(
            str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")
        )
        parts.append(f"{location}: {error.get('msg')}" if location else str(error.get("msg")))
    # The input itself is not echoed: it may hold a secret value.
    return "; ".join(parts) or "invalid input"


class PageRoute(APIRoute):
    """A dashboard route: its errors are pages, and signed-out visitors go to sign in."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired:
                target = quote(request.url.path, safe="/")
                return RedirectResponse(f"/ui/sign-in?next={target}", status_code=303)
            except ShipyardError as exc:
                return error_page(request, status_for(exc), exc.message)
            except (RequestValidationError, ValidationError) as exc:
                return error_page(request, 422, _validation_message(list(exc.errors())))
            except IntegrityError:
                message = "a concurrent change conflicted with this one; try again"
                return error_page(request, 409, message)
            except DBAPIError as exc:
                log.error("ui.database_unavailable", error=type(exc).__name__)
                return error_page(request, 503, "the database is unavailable; try again shortly")
            response.headers.update(_SECURITY_HEADERS)
            return response

        return page_handler


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value is not None else ""


def _digest(artifact_id: str | None) -> str:
    """`sha256:0123456789ab`: enough of a digest to recognise it."""
    if not artifact_id:
        return "—"
    algorithm, _, hexdigest = artifact_id.partition(":")
    return f"{algorithm}:{hexdigest[:12]}" if hexdigest else artifact_id[:19]


templates.env.filters["when"] = _when
templates.env.filters["iso"] = _iso
templates.env.filters["digest"] = _digest
