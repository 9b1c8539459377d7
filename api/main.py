"""The FastAPI app: `uvicorn api.main:create_app --factory`, or `shipyard api` / `shipyard up`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import Depends, FastAPI

from api.auth import authenticate
from api.deps import Publisher
from api.errors import install_error_handlers
from api.limits import BodyLimitMiddleware
from api.routers import (
    apps,
    artifacts,
    config,
    environments,
    health,
    history,
    hooks,
    maintenance,
    operations,
    pipelines,
    releases,
    schedules,
    subscriptions,
    tokens,
)
from shared.broker import make_celery, publish
from shared.services.webhooks import RejectionCounter
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None, publisher: Publisher | None = None) -> FastAPI:
    """The API for `settings`; `publisher` replaces the broker (tests of the routes alone)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.admin_token = settings.api_token()
        app.state.secret_box = settings.secret_box()
        app.state.hook_rejections = RejectionCounter()
        celery = None
        if publisher is None:
            celery = make_celery(settings, "shipyard-api")
            app.state.publisher = partial(publish, celery)
        else:
            app.state.publisher = publisher
        yield
        if celery is not None:
            celery.close()

    app = FastAPI(
        title="Shipyard",
        version="1",
        summary="Build → release → run, on your own machines.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.include_router(health.router)
    # Webhook deliveries authenticate by their signature, not by a bearer token.
    app.include_router(hooks.public_router, prefix="/v1")
    protected = [Depends(authenticate)]
    for router in (
        apps,
        environments,
        config,
        pipelines,
        artifacts,
        releases,
        operations,
        history,
        maintenance,
        tokens,
        hooks,
        schedules,
        subscriptions,
    ):
        app.include_router(router.router, prefix="/v1", dependencies=protected)
    return app
