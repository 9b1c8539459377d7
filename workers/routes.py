"""An environment's traffic on this run host's router, as the run stage and supervision see it."""

from __future__ import annotations

from shipyard.router import haproxy
from shipyard.router.traffic import Route, Traffic
from shipyard.shared import routing
from shipyard.shared.models import Environment
from shipyard.workers.context import WorkerContext


def traffic_for(context: WorkerContext, environment: Environment, app: str) -> Traffic | None:
    """The environment's traffic on this host's router; None when no router runs here."""
    if environment.route_slot is None or not context.router.available():
        return None
    route = Route(
        backend=haproxy.backend_name(environment.route_slot),
        hosts=routing.hosts(app, environment.name, list(environment.domains)),
        drain_timeout=environment.drain_timeout,
        app=app,
        environment=environment.name,
    )
    return Traffic(context.router, context.settings.router_map, route)
