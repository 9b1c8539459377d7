"""The FastAPI app: `uvicorn api.main:create_app --factory`, or `shipyard api` / `shipyard up`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import redis
from fastapi import Depends, FastAPI

from shipyard.api import ui
from shipyard.api.auth import authenticate
from shipyard.api.deps import Publisher
from shipyard.api.errors import install_error_handlers
from shipyard.api.limits import BodyLimitMiddleware
from shipyard.api.routers import (
    apps,
    artifacts,
    certificates,
    config,
    environments,
    formation,
    health,
    history,
    hooks,
    logs,
    maintenance,
    metrics,
    one_offs,
    operations,
    pipelines,
    releases,
    rollouts,
    schedules,
    subscriptions,
    tokens,
    workers,
)
from shipyard.shared.broker import make_celery, publish
from shipyard.shared.services.webhooks import RejectionCounter
from shipyard.shared.services.workers import WorkersProbe, live_workers, no_workers
from shipyard.shared.settings import Settings, get_settings


def create_app(
    settings: Settings | None = None,
    publisher: Publisher | None = None,
    workers_probe: WorkersProbe | None = None,
    broker: redis.Redis | None = None,
) -> FastAPI:
    """The API for `settings`; `publisher` replaces the broker (tests of the routes alone),
    `workers_probe` what the broker says about live workers (without one, a replaced broker has
    no workers behind it), and `broker` the broker's Redis (a fake one in tests)."""
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
        # The broker's Redis, for what workers publish there (liveness, live build logs).
        # It connects on first use: the API starts, and serves everything else, without it.
        broker_redis = broker
        if publisher is None and broker is None:
            broker_redis = redis.Redis.from_url(
                settings.redis_url, socket_timeout=5, socket_connect_timeout=5
            )
        app.state.broker_redis = broker_redis
        if workers_probe is not None:
            app.state.workers_probe = workers_probe
        elif broker_redis is None:
            app.state.workers_probe = no_workers
        else:
            app.state.workers_probe = partial(
                live_workers, redis_client=broker_redis, namespace=settings.broker_namespace
            )
        yield
        if celery is not None:
            celery.close()
        if broker_redis is not None and broker is None:
            broker_redis.close()

    app = FastAPI(
        title="Shipyard",
        version="1",
        summary="Build → release → run, on your own machines.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.include_router(health.router)
    # The dashboard signs in with a session cookie, not a bearer token (api/ui/sessions.py).
    ui.install(app)
    # Webhook deliveries authenticate by their signature, not by a bearer token.
    app.include_router(hooks.public_router, prefix="/v1")
    # Where Prometheus looks by default; its own scope check (api.auth.authenticate_metrics).
    app.include_router(metrics.router)
    protected = [Depends(authenticate)]
    for router in (
        apps,
        environments,
        formation,
        logs,
        config,
        pipelines,
        artifacts,
        releases,
        operations,
        rollouts,
        history,
        maintenance,
        tokens,
        hooks,
        schedules,
        subscriptions,
        workers,
        one_offs,
        certificates,
    ):
        app.include_router(router.router, prefix="/v1", dependencies=protected)
    return app
