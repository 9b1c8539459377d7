"""Warm standby: after a switch, the replaced release's processes keep running out of rotation for
the environment's window, so that a rollback to that release (a person's, or a watch's) is only a
router change. One release stands by per environment: the last one replaced.

A standby deployment is superseded, not retired, with `standby_until` set; either a rollback
takes its processes over (take) or, once the window is past, its run host's supervision stops
them (expire). Each of the two is one conditional UPDATE, so exactly one of them wins.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import Table, and_, bindparam, update
from sqlmodel import Session, col, select

from shipyard.shared.db import core_connection, sync_loaded
from shipyard.shared.models import Deployment, DeploymentStatus, Environment, utcnow
from shipyard.shared.process_record import ProcessRecord

_DEPLOYMENTS: Table = Deployment.__table__  # type: ignore[attr-defined]
_STANDING_BY = and_(
    _DEPLOYMENTS.c.id == bindparam("p_deployment"),
    _DEPLOYMENTS.c.status == DeploymentStatus.SUPERSEDED,
    _DEPLOYMENTS.c.retired_at.is_(None),
)
_STAND_BY = update(_DEPLOYMENTS).where(_STANDING_BY).values(standby_until=bindparam("p_until"))
# The environment's other standby, if any: its window ends now.
_END_OTHERS = (
    update(_DEPLOYMENTS)
    .where(
        _DEPLOYMENTS.c.environment_id == bindparam("p_environment"),
        _DEPLOYMENTS.c.id != bindparam("p_deployment"),
        _DEPLOYMENTS.c.status == DeploymentStatus.SUPERSEDED,
        _DEPLOYMENTS.c.retired_at.is_(None),
        _DEPLOYMENTS.c.standby_until > bindparam("p_now"),
    )
    .values(standby_until=bindparam("p_now"))
)
# Taken over by a rollback: its processes are the new deployment's from now on.
_TAKE = (
    update(_DEPLOYMENTS)
    .where(_STANDING_BY, _DEPLOYMENTS.c.standby_until > bindparam("p_now"))
    .values(retired_at=bindparam("p_now"), standby_until=None, processes=[])
)
# Its window past: its run host stops its processes.
_EXPIRE = (
    update(_DEPLOYMENTS)
    .where(_STANDING_BY, _DEPLOYMENTS.c.standby_until <= bindparam("p_now"))
    .values(retired_at=bindparam("p_now"))
)


def stand_by(
    *, session: Session, deployment_id: uuid.UUID, environment_id: uuid.UUID, seconds: float
) -> datetime:
    """The replaced deployment's processes run on, out of rotation, for `seconds`: until when.
    One release stands by per environment: the window of one standing by already ends now
    (its run host's supervision stops it at its next look)."""
    now = utcnow()
    until = now + timedelta(seconds=seconds)
    connection = core_connection(session)
    connection.execute(
        _END_OTHERS,
        {"p_environment": environment_id, "p_deployment": deployment_id, "p_now": now},
    )
    connection.execute(_STAND_BY, {"p_deployment": deployment_id, "p_until": until})
    sync_loaded(session, Deployment, deployment_id, {"standby_until": until})
    return until


def standing_by(
    *, session: Session, environment_id: uuid.UUID, release_id: uuid.UUID
) -> Deployment | None:
    """The environment's deployment of `release_id` whose processes stand by now, if any."""
    return session.exec(
        select(Deployment).where(
            Deployment.environment_id == environment_id,
            Deployment.release_id == release_id,
            Deployment.status == DeploymentStatus.SUPERSEDED,
            col(Deployment.retired_at).is_(None),
            col(Deployment.standby_until) > utcnow(),
        )
    ).first()


def take(*, session: Session, standby: Deployment) -> list[ProcessRecord] | None:
    """The standby deployment's processes, now no longer its own (recorded retired, its list
    emptied), for a rollback to go live with; None if its window ended or another took them."""
    processes = list(standby.processes)
    taken = core_connection(session).execute(_TAKE, {"p_deployment": standby.id, "p_now": utcnow()})
    return processes if taken.rowcount == 1 else None


def expired(*, session: Session) -> list[Deployment]:
    """Deployments whose standby window is past and whose processes may still run."""
    return list(
        session.exec(
            select(Deployment).where(
                Deployment.status == DeploymentStatus.SUPERSEDED,
                col(Deployment.retired_at).is_(None),
                col(Deployment.standby_until) <= utcnow(),
            )
        )
    )


def expire(*, session: Session, deployment_id: uuid.UUID) -> bool:
    """Record the standby deployment retired, its window past; whether this call did (then its
    processes are the caller's to stop, and no rollback can take them any more)."""
    done = core_connection(session).execute(
        _EXPIRE, {"p_deployment": deployment_id, "p_now": utcnow()}
    )
    return bool(done.rowcount == 1)


def standby_seconds(*, session: Session, environment_id: uuid.UUID) -> float:
    """How long the environment keeps a replaced release standing by."""
    return float(
        session.exec(
            select(Environment.standby_seconds).where(Environment.id == environment_id)
        ).one()
    )
