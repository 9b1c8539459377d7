"""Scenario 6's floors: what one request costs below the API, on the API's uvicorn settings.

`python -m bench.floors --port P` serves two bare Starlette routes through the very call
`shipyard api` makes (shipyard.cli.server.serve_asgi), with the stack's settings and logging:

- `GET /floor/http`: a constant JSON body (the HTTP floor);
- `GET /floor/sql/{pipeline_id}`: the same, reading one pipeline row over the API's engine
  (shipyard.shared.db.get_engine: same URL, driver and pool), the HTTP + SQL floor.

The SQL route is a plain `def`, as the API's routes are: Starlette runs it in its thread pool.
"""

from __future__ import annotations

import argparse
import uuid

from sqlalchemy import Table, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shipyard.cli.server import serve_asgi
from shipyard.shared.db import get_engine
from shipyard.shared.logging import configure_logging
from shipyard.shared.models import Pipeline
from shipyard.shared.settings import get_settings

HTTP_PATH = "/floor/http"
SQL_PATH = "/floor/sql/{pipeline_id}"
_PIPELINES: Table = Pipeline.__table__  # type: ignore[attr-defined]
_CONSTANT = {"id": "00000000-0000-0000-0000-000000000000", "status": "succeeded"}


async def constant_json(_request: Request) -> JSONResponse:
    """The HTTP floor: nothing but the response."""
    return JSONResponse(_CONSTANT)


def one_row(request: Request) -> JSONResponse:
    """The HTTP + SQL floor: one row by primary key, over the API's engine."""
    engine = get_engine(get_settings().sqlalchemy_url)
    statement = select(_PIPELINES.c.id, _PIPELINES.c.status).where(
        _PIPELINES.c.id == uuid.UUID(request.path_params["pipeline_id"])
    )
    with engine.connect() as connection:
        row = connection.execute(statement).one()
    return JSONResponse({"id": str(row.id), "status": str(row.status)})


def create_app() -> Starlette:
    """The floors' app (a factory, as the API's is)."""
    routes = [Route(HTTP_PATH, constant_json), Route(SQL_PATH, one_row)]
    # Answered as the API's is, so the harness waits for both the same way (Stack.wait_api).
    routes.append(Route("/health", constant_json))
    return Starlette(routes=routes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = get_settings()
    configure_logging(json=settings.log_format == "json", level=settings.log_level)
    serve_asgi(
        "bench.floors:create_app",
        host="127.0.0.1",
        port=args.port,
        workers=1,
        forwarded_allow_ips=None,
    )


if __name__ == "__main__":
    main()
