"""`apps destroy`: an app taken out of service for good (Heroku's `apps:destroy`).

Nothing of it keeps running or answering: each environment's live deployment is recorded
stopped, and each run host's router stops those processes (serve.apps `stop_stale`) and forgets
their host names (serve.router_agent `sync_routes`) within seconds; its schedules, subscriptions
and webhook stop firing. Its records stay (what ran, when, who asked: the store's promise) under
a tombstone name that no request can give, so its name, host names and domains are free at once.
Its environments' router slots are reused only after every router has had time to empty them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, delete, or_, update
from sqlmodel import Session, col, select

from shipyard.shared.exceptions import Conflict, InvalidInput
from shipyard.shared.models import (
    App,
    Certificate,
    Deployment,
    DeploymentStatus,
    Environment,
    OneOff,
    OneOffStatus,
    Pipeline,
    Schedule,
    Subscription,
    WebhookConfig,
    utcnow,
)
from shipyard.shared.services import queueing

# A destroyed environment keeps its router slot this long before another can take it: every
# router takes its processes out within seconds (serve.apps STALE_SECONDS), well before.
SLOT_QUARANTINE = timedelta(minutes=10)


@dataclass(frozen=True)
class Destroyed:
    """What `destroy_app` did."""

    app: App
    environments: list[str]
    stopped: int  # live deployments recorded stopped: their processes stop on their run hosts
    one_offs: list[uuid.UUID]  # one-off commands still running: their hosts are asked to end them


def tombstone(app: App) -> str:
    """The name a destroyed app keeps in the store: never a valid app name (it holds `~`), unique
    (its id), and still saying what it was."""
    return f"{app.name[:29]}~{app.id.hex}"


def destroy_app(*, session: Session, app: App, confirm: str | None) -> Destroyed:
    """Destroy `app` (its name given again as `confirm`); 409 while one of its pipelines runs."""
    if confirm != app.name:
        raise InvalidInput(
            f"destroying {app.name} stops all its processes and cannot be undone: "
            f"confirm with its name (shipyard apps destroy {app.name} --confirm {app.name})"
        )
    # The app's row, locked: a pipeline created meanwhile for it waits for this to commit.
    session.exec(select(App.id).where(App.id == app.id).with_for_update()).first()
    busy = session.exec(
        select(Pipeline.id).where(Pipeline.app_id == app.id, queueing.active())
    ).first()
    if busy is not None:
        raise Conflict(
            f"a pipeline of {app.name} is under way ({busy}); destroy it once that has ended"
        )
    now = utcnow()
    environments = list(
        session.exec(
            select(Environment).where(Environment.app_id == app.id).order_by(col(Environment.name))
        )
    )
    environment_ids = [e.id for e in environments]
    # Live ones, and any whose processes may still run: starting, or superseded but never
    # recorded retired (a spread switch's late host). Each run host stops a stopped one's.
    running_deployments = session.exec(
        select(Deployment).where(
            col(Deployment.environment_id).in_(environment_ids),
            or_(
                col(Deployment.status).in_([DeploymentStatus.LIVE, DeploymentStatus.STARTING]),
                and_(
                    col(Deployment.status) == DeploymentStatus.SUPERSEDED,
                    col(Deployment.retired_at).is_(None),
                ),
            ),
        )
    ).all()
    live = 0
    for deployment in running_deployments:
        live += deployment.status == DeploymentStatus.LIVE
        deployment.status, deployment.ended_at = (
            DeploymentStatus.STOPPED,
            deployment.ended_at or now,
        )
        session.add(deployment)
    running = list(
        session.exec(
            select(OneOff.id).where(
                col(OneOff.environment_id).in_(environment_ids),
                col(OneOff.status).in_([OneOffStatus.QUEUED, OneOffStatus.RUNNING]),
            )
        )
    )
    for environment in environments:
        environment.domains = []  # free for another environment at once
        # Placed nowhere: no run host counts it (`shipyard hosts`, failover). Each host finds
        # the processes to stop in their records, which say where each ran.
        environment.run_host, environment.extra_hosts = None, []
        session.add(environment)
    for table in (Schedule, Subscription):
        session.execute(
            update(table)
            .where(col(table.app_id) == app.id, col(table.deleted_at).is_(None))
            .values(deleted_at=now)
            .execution_options(synchronize_session=False)
        )
    # Its domains' certificates (keys encrypted, but keys all the same) go with the domains.
    session.execute(
        delete(Certificate)
        .where(col(Certificate.environment_id).in_(environment_ids))
        .execution_options(synchronize_session=False)
    )
    config = session.exec(select(WebhookConfig).where(WebhookConfig.app_id == app.id)).first()
    if config is not None:
        session.delete(config)  # a push to its repository must find no app
    names = [e.name for e in environments]
    app.name = tombstone(app)
    app.destroyed_at = now
    session.add(app)
    session.flush()
    return Destroyed(app=app, environments=names, stopped=live, one_offs=running)


def reclaim_route_slots(*, session: Session) -> None:
    """Give back the router slots of environments destroyed long enough ago (SLOT_QUARANTINE)."""
    ended = select(App.id).where(col(App.destroyed_at) < utcnow() - SLOT_QUARANTINE)
    session.execute(
        update(Environment)
        .where(col(Environment.app_id).in_(ended), col(Environment.route_slot).is_not(None))
        .values(route_slot=None)
        .execution_options(synchronize_session=False)
    )
