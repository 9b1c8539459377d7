"""What the routers must know, from the store: each environment's slot and host names, and the
web processes of each live deployment."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import Table, and_, bindparam, or_, update
from sqlmodel import Session, col, select

from shipyard.shared import routing
from shipyard.shared.db import core_connection, sync_loaded
from shipyard.shared.models import (
    App,
    Deployment,
    DeploymentShare,
    DeploymentStatus,
    Environment,
    utcnow,
)
from shipyard.shared.process_record import ProcessRecord


@dataclass(frozen=True)
class EnvironmentRoute:
    """One environment as its routers see it."""

    environment_id: uuid.UUID
    slot: int
    hosts: tuple[str, ...]
    drain_timeout: float
    live_processes: list[ProcessRecord] = field(default_factory=list)


def environment_routes(*, session: Session) -> list[EnvironmentRoute]:
    """Every environment with a router slot, and the processes of its live deployment."""
    rows = session.exec(
        select(Environment, App)
        .join(App, col(App.id) == col(Environment.app_id))
        # A destroyed app's environments route nothing: its routers forget their host names.
        .where(col(Environment.route_slot).is_not(None), col(App.destroyed_at).is_(None))
    ).all()
    live = {
        d.environment_id: d.processes
        for d in session.exec(
            select(Deployment).where(Deployment.status == DeploymentStatus.LIVE)
        ).all()
    }
    return [_route(environment, app, live.get(environment.id, [])) for environment, app in rows]


def environment_slots(*, session: Session) -> dict[int, uuid.UUID]:
    """Router slot → the environment that has it (what the router's request lines belong to)."""
    rows = session.exec(
        select(Environment.route_slot, Environment.id)
        .join(App, col(App.id) == col(Environment.app_id))
        .where(col(Environment.route_slot).is_not(None), col(App.destroyed_at).is_(None))
    ).all()
    return {int(slot): environment_id for slot, environment_id in rows if slot is not None}


def routed_servers(*, session: Session) -> dict[int, set[str]]:
    """Router slot → the servers its backend may hold now: those of its environment's live
    deployment, of one superseded whose switch has not retired it yet (draining), and of one
    starting (a canary's servers take their share of requests before it goes live; a spread
    one's are its shares' until then). A server
    of anything else (a destroyed app's, a failed deployment's) is a leftover."""
    rows = session.exec(
        select(Environment.route_slot, Deployment.processes)
        .join(Deployment, col(Deployment.environment_id) == col(Environment.id))
        .join(App, col(App.id) == col(Environment.app_id))
        .where(
            col(Environment.route_slot).is_not(None),
            col(App.destroyed_at).is_(None),
            or_(
                col(Deployment.status).in_([DeploymentStatus.STARTING, DeploymentStatus.LIVE]),
                and_(
                    col(Deployment.status) == DeploymentStatus.SUPERSEDED,
                    col(Deployment.retired_at).is_(None),
                ),
            ),
        )
    ).all()
    # A starting deployment of an environment spread over several run hosts holds its processes
    # in its shares until it goes live: a canary's are routed before that.
    shared = session.exec(
        select(Environment.route_slot, DeploymentShare.processes)
        .join(Deployment, col(Deployment.environment_id) == col(Environment.id))
        .join(DeploymentShare, col(DeploymentShare.deployment_id) == col(Deployment.id))
        .join(App, col(App.id) == col(Environment.app_id))
        .where(
            col(Environment.route_slot).is_not(None),
            col(App.destroyed_at).is_(None),
            col(Deployment.status) == DeploymentStatus.STARTING,
        )
    ).all()
    servers: dict[int, set[str]] = {}
    for slot, processes in [*rows, *shared]:
        servers.setdefault(int(slot or 0), set()).update(
            str(p["server"]) for p in processes if p.get("server")
        )
    return servers


def _route(environment: Environment, app: App, processes: list[ProcessRecord]) -> EnvironmentRoute:
    return EnvironmentRoute(
        environment_id=environment.id,
        slot=int(environment.route_slot or 0),
        hosts=routing.hosts(app.name, environment.name, list(environment.domains)),
        drain_timeout=environment.drain_timeout,
        live_processes=list(processes),
    )


_DEPLOYMENTS: Table = Deployment.__table__  # type: ignore[attr-defined]
_THIS_DEPLOYMENT = _DEPLOYMENTS.c.id == bindparam("p_deployment")
# Built once: every switch through the router records both.
_SWITCHED = update(_DEPLOYMENTS).where(_THIS_DEPLOYMENT).values(switched_at=bindparam("p_now"))
_RETIRED = update(_DEPLOYMENTS).where(_THIS_DEPLOYMENT).values(retired_at=bindparam("p_now"))


def record_switched(*, session: Session, deployment_id: uuid.UUID) -> None:
    """The router sends the deployment its environment's traffic from now on."""
    now = utcnow()
    core_connection(session).execute(_SWITCHED, {"p_deployment": deployment_id, "p_now": now})
    sync_loaded(session, Deployment, deployment_id, {"switched_at": now})


def record_retired(*, session: Session, deployment_id: uuid.UUID) -> None:
    """The deployment's processes are all stopped (after their requests drained)."""
    now = utcnow()
    core_connection(session).execute(_RETIRED, {"p_deployment": deployment_id, "p_now": now})
    sync_loaded(session, Deployment, deployment_id, {"retired_at": now})
