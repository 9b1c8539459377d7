"""The table from error class to HTTP status, and the handler that answers with it."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shipyard.api.auth import Forbidden, Unauthorized
from shipyard.api.errors import STATUS_BY_ERROR, install_error_handlers, status_for
from shipyard.shared.exceptions import (
    ArtifactIntegrityError,
    ConfigurationError,
    Conflict,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    ShipyardError,
    StageFailed,
)
from shipyard.shared.services.webhooks import DeliveryRejected


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ShipyardError("bad"), 400),
        (NotFound("no such app"), 404),
        (Conflict("taken"), 409),
        (InvalidInput("not acceptable"), 422),
        (ServiceUnavailable("down"), 503),
        (ConfigurationError("unsafe"), 400),
        (StageFailed("failed"), 400),
        (ArtifactIntegrityError("corrupt"), 400),
        (DeliveryRejected("bad_signature"), 401),
        (Unauthorized("no token"), 401),
        (Forbidden("no scope"), 403),
    ],
)
def test_each_error_has_its_status(error: ShipyardError, status: int) -> None:
    assert status_for(error) == status


def test_an_unlisted_error_takes_its_nearest_listed_base_status() -> None:
    class Gone(NotFound):
        pass

    class GoneForGood(Gone):
        pass

    class Refused(StageFailed):
        pass

    class Both(Conflict, NotFound):
        pass

    assert Gone not in STATUS_BY_ERROR and GoneForGood not in STATUS_BY_ERROR
    assert status_for(Gone("gone")) == status_for(GoneForGood("gone")) == 404
    assert status_for(Refused("refused")) == 400
    assert status_for(Both("both")) == 409  # the first base in the MRO, as Python resolves it


def _subclasses(error: type[ShipyardError]) -> list[type[ShipyardError]]:
    return [error, *(sub for child in error.__subclasses__() for sub in _subclasses(child))]


def test_no_error_class_carries_an_http_status() -> None:
    # Every subclass imported so far (the table's, and any new one), not only the listed ones.
    errors = _subclasses(ShipyardError)
    assert set(STATUS_BY_ERROR) <= set(errors)
    assert [error for error in errors if hasattr(error, "status_code")] == []


@pytest.mark.parametrize(
    ("error", "status", "challenge"),
    [
        (Unauthorized("missing bearer token"), 401, "Bearer"),
        (DeliveryRejected("missing_signature"), 401, "Bearer"),
        (Forbidden("this needs an admin token"), 403, None),
        (NotFound("app 'web' not found"), 404, None),
    ],
)
def test_the_handler_answers_with_the_table_status_and_challenges_a_401(
    error: ShipyardError, status: int, challenge: str | None
) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fail")
    def fail() -> None:
        raise error

    response = TestClient(app).get("/fail")

    assert response.status_code == status
    assert response.json() == {"detail": error.message}
    assert response.headers.get("WWW-Authenticate") == challenge
