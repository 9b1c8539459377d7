"""Who is calling and what they may do: the admin token, or a scoped API token.

Scopes: `read` (every GET), `deploy:<environment>` (read, plus deploy, configure, roll back and
promote into that environment), `metrics` (`GET /metrics` only, for a Prometheus server),
`admin` (everything). Every GET needs at least one scope besides `metrics`; every other route
needs `admin` unless it is marked `@deploy_scoped`, in which case the route itself checks
`deploy:<environment>` for the environment it changes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import Depends, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shipyard.api.deps import SessionDep
from shipyard.shared.exceptions import ShipyardError
from shipyard.shared.services import tokens

ADMIN = "admin"
METRICS = "metrics"
# The scopes that may scrape `/metrics`: a Prometheus server's own, or any reader's.
METRICS_READERS = frozenset({METRICS, "read", ADMIN})
_DEPLOY_SCOPED = "__shipyard_deploy_scoped__"
_F = TypeVar("_F", bound=Callable[..., Any])


class Unauthorized(ShipyardError):
    """No token, or a wrong one."""


class Forbidden(ShipyardError):
    """A valid token without the scope the request needs."""


@dataclass(frozen=True)
class Principal:
    """The caller: a token's name and scopes."""

    name: str
    scopes: frozenset[str]

    def can_deploy(self, environment: str) -> bool:
        return ADMIN in self.scopes or f"deploy:{environment}" in self.scopes

    def require_deploy(self, environment: str) -> None:
        """Refuse (403) unless the caller may change `environment`."""
        if not self.can_deploy(environment):
            raise Forbidden(
                f"this token may not deploy to {environment!r} (needs deploy:{environment})"
            )

    def require_admin(self) -> None:
        if ADMIN not in self.scopes:
            raise Forbidden("this needs an admin token")


def deploy_scoped(route: _F) -> _F:
    """Mark a route whose body checks `deploy:<environment>` itself."""
    setattr(route, _DEPLOY_SCOPED, True)
    return route


_bearer = HTTPBearer(auto_error=False)


async def authenticate(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Resolve the bearer token to a principal, then apply the route's default rule."""
    principal = await _bearer_principal(request, session, credentials)
    route = request.scope.get("route")
    endpoint = route.endpoint if isinstance(route, APIRoute) else None
    if request.method in ("GET", "HEAD"):
        if not principal.scopes - {METRICS}:
            raise Forbidden("this token has no scope that reads this (metrics: /metrics only)")
    elif not getattr(endpoint, _DEPLOY_SCOPED, False):
        principal.require_admin()
    return principal


async def authenticate_metrics(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """`/metrics`: a token with the `metrics`, `read` or `admin` scope (docs/operations.md)."""
    principal = await _bearer_principal(request, session, credentials)
    if not principal.scopes & METRICS_READERS:
        raise Forbidden("reading /metrics needs the metrics, read or admin scope")
    return principal


async def _bearer_principal(
    request: Request, session: SessionDep, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    """The principal of the request's bearer token, remembered on the request; 401 without.

    The admin token is checked on the event loop; only an API token, which the store holds,
    takes a thread for its lookup (a thread-pool hop is a sizeable part of a small request).
    """
    if credentials is None:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    presented = credentials.credentials
    principal = _admin_principal(request, presented)
    if principal is None:
        principal = await anyio.to_thread.run_sync(_token_principal, session, presented)
    request.state.principal = principal
    return principal


def principal_for(request: Request, session: SessionDep, presented: str) -> Principal:
    """The principal a presented token stands for (a bearer header, or the dashboard's session);
    Unauthorized if it is no live token."""
    return _admin_principal(request, presented) or _token_principal(session, presented)


def _admin_principal(request: Request, presented: str) -> Principal | None:
    admin_token: str = request.app.state.admin_token
    if secrets.compare_digest(presented.encode(), admin_token.encode()):
        return Principal(name="admin", scopes=frozenset({ADMIN}))
    return None


def _token_principal(session: SessionDep, presented: str) -> Principal:
    row = tokens.authenticate(session=session, token=presented)
    principal = Principal(name=row.name, scopes=frozenset(row.scopes)) if row else None
    # The lookup's transaction ends here, in its own thread: a route that reads on a connection
    # of its own (api.deps.read_in_one_thread) would otherwise wait for the one it holds
    # (SQLite's write lock) or take a second from the pool while it idles in a transaction.
    session.rollback()
    if principal is None:
        raise Unauthorized("invalid or revoked token")
    return principal


async def get_principal(request: Request) -> Principal:
    """The principal `authenticate` resolved (on the event loop: a plain `def` would take a
    thread-pool hop to read one attribute)."""
    principal: Principal = request.state.principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
