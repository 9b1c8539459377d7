"""One-off commands (`shipyard run`, Heroku's `heroku run`): an admin command run once in a
release of an environment, exactly as its processes run (artifact, config and secrets, storage,
runner), on the run host the environment is placed on; recorded with who ran it, where, how it
ended and its output's tail.

The API records the run and sends its id to the host's inbox (shared.host_inbox); the host's
agent claims it (queued → running), runs it and records the end (workers.one_offs).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from shipyard.shared.exceptions import InvalidInput, NotFound
from shipyard.shared.models import (
    App,
    Environment,
    OneOff,
    OneOffStatus,
    Release,
    utcnow,
)
from shipyard.shared.schemas import OneOffCreate, OneOffPublic
from shipyard.shared.services import deployments, releases

ENDED = (
    OneOffStatus.SUCCEEDED,
    OneOffStatus.FAILED,
    OneOffStatus.TIMED_OUT,
    OneOffStatus.CANCELLED,
)


def target_release(*, session: Session, environment: Environment, version: int | None) -> Release:
    """The release a one-off runs in: vN if given; else the live one; else, while nothing is
    live yet (a first deploy whose health check needs a set-up step first), the newest."""
    if version is not None:
        return releases.get_release_by_version(
            session=session, environment=environment, version=version
        )
    live = deployments.live_deployment(session=session, environment_id=environment.id)
    if live is not None:
        return releases.get_release(session=session, release_id=live.release_id)
    newest = session.exec(
        select(Release)
        .where(Release.environment_id == environment.id)
        .order_by(col(Release.version).desc())
    ).first()
    if newest is None:
        raise InvalidInput(
            f"{environment.name} has no release yet: deploy it first "
            "(a one-off runs in a release: its artifact and config)"
        )
    return newest


def create(
    *, session: Session, environment: Environment, data: OneOffCreate, requested_by: str
) -> OneOff:
    """Record a one-off of `data.command` in its release, on the environment's run host."""
    release = target_release(session=session, environment=environment, version=data.release)
    if environment.run_host is None:
        raise InvalidInput(
            f"{environment.name} is not placed on a run host yet: deploy it first, or place it "
            "(`shipyard envs place`)"
        )
    run = OneOff(
        environment_id=environment.id,
        release_id=release.id,
        command=data.command,
        host=environment.run_host,
        requested_by=requested_by[:100],
        timeout=data.timeout,
    )
    session.add(run)
    session.flush()
    return run


def get(*, session: Session, run_id: uuid.UUID) -> OneOff:
    run = session.get(OneOff, run_id)
    if run is None:
        raise NotFound(f"no one-off run {run_id}")
    return run


def of_environment(*, session: Session, environment: Environment, limit: int) -> list[OneOff]:
    """The environment's one-offs, newest first."""
    return list(
        session.exec(
            select(OneOff)
            .where(OneOff.environment_id == environment.id)
            .order_by(col(OneOff.created_at).desc())
            .limit(limit)
        )
    )


def view(*, session: Session, run: OneOff) -> OneOffPublic:
    release = session.get(Release, run.release_id)
    environment = session.get(Environment, run.environment_id)
    app = session.get(App, environment.app_id) if environment is not None else None
    assert release is not None and environment is not None and app is not None
    return OneOffPublic(
        id=run.id,
        app=app.name,
        environment=environment.name,
        release_version=release.version,
        command=run.command,
        host=run.host,
        requested_by=run.requested_by,
        timeout=run.timeout,
        status=run.status,
        exit_code=run.exit_code,
        output=run.output,
        error=run.error,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration=_seconds(run.started_at, run.finished_at),
    )


def claim(*, session: Session, run_id: uuid.UUID, host: str) -> OneOff | None:
    """Mark the run started on `host` if it is still queued there (a second delivery finds it
    taken); returns it then."""
    claimed = session.execute(
        update(OneOff)
        .where(
            col(OneOff.id) == run_id,
            col(OneOff.host) == host,
            col(OneOff.status) == OneOffStatus.QUEUED,
        )
        .values(status=OneOffStatus.RUNNING, started_at=utcnow())
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(OneOff, run_id, populate_existing=True)


def finish(
    *,
    session: Session,
    run_id: uuid.UUID,
    status: OneOffStatus,
    exit_code: int | None,
    output: str,
    error: str | None = None,
) -> None:
    """Record how the run ended (its output's tail, redacted by the caller)."""
    session.execute(
        update(OneOff)
        .where(col(OneOff.id) == run_id, col(OneOff.status).not_in(ENDED))
        .values(
            status=status,
            exit_code=exit_code,
            output=output,
            error=error,
            finished_at=utcnow(),
        )
    )


def cancel_queued(*, session: Session, run_id: uuid.UUID) -> bool:
    """Cancel the run if its host has not started it yet (a running one is killed by its host
    when it sees the cancel)."""
    cancelled = session.execute(
        update(OneOff)
        .where(col(OneOff.id) == run_id, col(OneOff.status) == OneOffStatus.QUEUED)
        .values(
            status=OneOffStatus.CANCELLED, error="cancelled before it started", finished_at=utcnow()
        )
    )
    return bool(cancelled.rowcount == 1)  # type: ignore[attr-defined]


def _seconds(started: datetime | None, finished: datetime | None) -> float | None:
    if started is None or finished is None:
        return None
    return round((finished - started).total_seconds(), 3)
