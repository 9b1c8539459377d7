"""Every error as `{"detail": "…"}` with the right status; never a traceback, never an echo."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError

from shipyard.api.auth import Forbidden, Unauthorized
from shipyard.shared.exceptions import (
    Conflict,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    ShipyardError,
)
from shipyard.shared.services.webhooks import DeliveryRejected

log = structlog.get_logger(__name__)

# The one place an error meets HTTP. A class not listed answers with its nearest listed base's
# status, as Starlette looks up `exception_handlers` along the class's MRO.
STATUS_BY_ERROR: Mapping[type[ShipyardError], int] = {
    ShipyardError: 400,
    Unauthorized: 401,
    DeliveryRejected: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    InvalidInput: 422,
    ServiceUnavailable: 503,
}


def status_for(error: ShipyardError) -> int:
    """The HTTP status of `error`: its class's in `STATUS_BY_ERROR`, else its nearest base's."""
    for cls in type(error).__mro__:
        if issubclass(cls, ShipyardError) and cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return STATUS_BY_ERROR[ShipyardError]  # unreached: every error descends from ShipyardError


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return f"{location}: {error.get('msg')}" if location else str(error.get("msg"))


async def _shipyard_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ShipyardError)
    status = status_for(exc)
    # A 401 names the scheme that would authenticate the request (RFC 9110 §11.6.1).
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": exc.message}, status_code=status, headers=headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # The input itself is not echoed: it may hold a secret value.
    detail = "; ".join(_describe(error) for error in exc.errors())
    return JSONResponse({"detail": detail or "invalid request"}, status_code=422)


async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.error("api.database_unavailable", error=type(exc).__name__)
    return JSONResponse(
        {"detail": "the database is unavailable; try again shortly"}, status_code=503
    )


async def _conflict(_request: Request, exc: Exception) -> JSONResponse:
    # Two requests raced for the same unique row; the loser can simply try again.
    log.info("api.integrity_conflict", error=type(exc).__name__)
    return JSONResponse(
        {"detail": "a concurrent change conflicted with this one; try again"}, status_code=409
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(ShipyardError, _shipyard_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(IntegrityError, _conflict)
    app.add_exception_handler(DBAPIError, _database_unavailable)
