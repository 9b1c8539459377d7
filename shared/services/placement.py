"""Where an environment's processes run: the run host it is placed on.

An environment is placed on one run host (SHIPYARD_HOST_NAME), or spread over several: its
run_host first, then its extra_hosts. Its run stages go to its run_host's own queue
(`run.<host>`, shared.stages.host_queue), so that every release of it starts, switches and
retires on the same hosts and their routers; when it is spread, that host coordinates the others
(workers.stages.spread). An environment not placed yet is placed by its first run stage, on the host
that runs it.
"""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlmodel import Session, col, select

from shipyard.shared.models import Environment, Pipeline


def hosts_of(environment: Environment) -> list[str]:
    """The run hosts the environment runs on, its coordinating run_host first (none: not placed
    yet)."""
    if environment.run_host is None:
        return []
    return [
        environment.run_host,
        *(h for h in environment.extra_hosts if h != environment.run_host),
    ]


def run_host_of(*, session: Session, pipeline_id: uuid.UUID) -> str | None:
    """The run host that `pipeline_id`'s environment is placed on (None: not placed yet)."""
    return session.exec(
        select(Environment.run_host)
        .join(Pipeline, col(Pipeline.environment_id) == col(Environment.id))
        .where(Pipeline.id == pipeline_id)
    ).first()


def place(*, session: Session, environment: Environment, host: str) -> str:
    """Place `environment` on `host` unless it is placed already; returns where it is placed
    (first writer wins: the statement is conditional)."""
    if environment.run_host is None:
        session.execute(
            update(Environment)
            .where(col(Environment.id) == environment.id, col(Environment.run_host).is_(None))
            .values(run_host=host)
        )
        session.refresh(environment, ["run_host"])
    assert environment.run_host is not None
    return environment.run_host
