"""Every error as `{"detail": "…"}` with the right status; never a traceback, never an echo."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError

from shipyard.shared.exceptions import ShipyardError

log = structlog.get_logger(__name__)


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return f"{location}: {error.get('msg')}" if location else str(error.get("msg"))


async def _shipyard_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ShipyardError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    return JSONResponse({"detail": exc.message}, status_code=exc.status_code, headers=headers)


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
