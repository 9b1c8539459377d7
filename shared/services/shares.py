"""The shares of a deployment spread over several run hosts: each host's processes, and how far
its start and switch went (workers.spread runs the protocol; this is what it records).

A share moves starting → ready (healthy, not routed) or failed, then → live (switched) or
stopped (called off). Only the attempt that asked for a share may advance it: a message of an
older attempt of the run stage finds a newer attempt recorded and does nothing.
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from shipyard.shared.models import DeploymentShare, ShareStatus, utcnow
from shipyard.shared.process_record import ProcessRecord

# Where a share's status may go from, per status it is set to.
_FROM = {
    ShareStatus.READY: (ShareStatus.STARTING,),
    ShareStatus.FAILED: (ShareStatus.STARTING,),
    ShareStatus.LIVE: (ShareStatus.READY, ShareStatus.LIVE),
    ShareStatus.STOPPED: (ShareStatus.STARTING, ShareStatus.READY, ShareStatus.FAILED),
}


def ask(
    *, session: Session, deployment_id: uuid.UUID, hosts: list[str], attempt: int
) -> list[DeploymentShare]:
    """Record a share for each of `hosts` (in placement order), replacing an earlier attempt's;
    returns them."""
    session.execute(
        delete(DeploymentShare).where(col(DeploymentShare.deployment_id) == deployment_id)
    )
    rows = [
        DeploymentShare(
            deployment_id=deployment_id,
            host=host,
            position=position,
            hosts=len(hosts),
            attempt=attempt,
        )
        for position, host in enumerate(hosts)
    ]
    session.add_all(rows)
    return rows


def of(*, session: Session, deployment_id: uuid.UUID) -> list[DeploymentShare]:
    """The deployment's shares, in placement order."""
    return list(
        session.exec(
            select(DeploymentShare)
            .where(DeploymentShare.deployment_id == deployment_id)
            .order_by(col(DeploymentShare.position))
        )
    )


def get(
    *, session: Session, deployment_id: uuid.UUID, host: str, attempt: int
) -> DeploymentShare | None:
    """`host`'s share of the deployment if `attempt` is the one that asked for it."""
    share = session.get(DeploymentShare, (deployment_id, host))
    return share if share is not None and share.attempt == attempt else None


def advance(
    *,
    session: Session,
    deployment_id: uuid.UUID,
    host: str,
    attempt: int,
    status: ShareStatus,
    processes: list[ProcessRecord] | None = None,
    error: str | None = None,
) -> bool:
    """Move `host`'s share to `status` (with its processes, or why it failed); False when it is
    no longer this attempt's or not where `status` may come from."""
    values: dict[str, object] = {"status": status, "updated_at": utcnow()}
    if processes is not None:
        values["processes"] = processes
    if error is not None:
        values["error"] = error
    moved = session.execute(
        update(DeploymentShare)
        .where(
            col(DeploymentShare.deployment_id) == deployment_id,
            col(DeploymentShare.host) == host,
            col(DeploymentShare.attempt) == attempt,
            col(DeploymentShare.status).in_(_FROM[status]),
        )
        .values(**values)
    )
    return bool(moved.rowcount == 1)  # type: ignore[attr-defined]


def record_processes(
    *,
    session: Session,
    deployment_id: uuid.UUID,
    host: str,
    attempt: int,
    processes: list[ProcessRecord],
) -> None:
    """The share's processes exist (before their health check: whoever calls it off stops them)."""
    session.execute(
        update(DeploymentShare)
        .where(
            col(DeploymentShare.deployment_id) == deployment_id,
            col(DeploymentShare.host) == host,
            col(DeploymentShare.attempt) == attempt,
        )
        .values(processes=processes, updated_at=utcnow())
    )
