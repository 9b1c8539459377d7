"""Warm standby: a replaced release's processes stand by until a rollback takes them over or
their window ends, and never both."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from shipyard.shared.models import App, Deployment, Environment, utcnow
from shipyard.shared.services import deployments, standby
from tests.shared.factories import make_artifact, make_release

WEB = {"type": "web", "status": "running", "url": "http://127.0.0.1:5000", "pid": 1}


def _deploy(session: Session, app: App, environment: Environment, label: str) -> Deployment:
    release = make_release(session, app, environment, make_artifact(session, app, label))
    assert release.pipeline_id is not None
    deployment = deployments.begin_deployment(
        session=session, pipeline_id=release.pipeline_id, release=release, cause="deploy"
    )
    assert deployment is not None
    deployments.go_live(session=session, deployment=deployment, processes=[WEB])
    session.commit()
    return deployment


def _replaced(session: Session, app: App, staging: Environment, seconds: float) -> Deployment:
    """v1 replaced by v2, standing by for `seconds`."""
    old = _deploy(session, app, staging, "a")
    _deploy(session, app, staging, "b")
    standby.stand_by(
        session=session, deployment_id=old.id, environment_id=staging.id, seconds=seconds
    )
    session.commit()
    session.refresh(old)
    return old


def test_a_rollback_takes_a_standing_by_release_once(
    session: Session, app: App, staging: Environment
) -> None:
    old = _replaced(session, app, staging, seconds=300)
    assert old.standby_until is not None and old.standby_until > utcnow()

    found = standby.standing_by(
        session=session, environment_id=staging.id, release_id=old.release_id
    )
    assert found is not None and found.id == old.id
    assert standby.take(session=session, standby=found) == [WEB]
    assert standby.take(session=session, standby=found) is None  # taken already
    session.commit()
    session.refresh(old)
    assert old.retired_at is not None and old.processes == [] and old.standby_until is None
    # Nothing left for the supervision to stop, nor for another rollback to take.
    assert standby.expired(session=session) == []
    assert (
        standby.standing_by(session=session, environment_id=staging.id, release_id=old.release_id)
        is None
    )


def test_a_window_past_ends_the_standby_and_no_rollback_can_take_it_after(
    session: Session, app: App, staging: Environment
) -> None:
    old = _replaced(session, app, staging, seconds=300)
    old.standby_until = utcnow() - timedelta(seconds=1)
    session.add(old)
    session.commit()

    assert [d.id for d in standby.expired(session=session)] == [old.id]
    assert standby.expire(session=session, deployment_id=old.id) is True
    assert standby.expire(session=session, deployment_id=old.id) is False  # once
    session.commit()
    session.refresh(old)
    assert old.retired_at is not None and old.processes == [WEB]  # for its host to stop
    assert standby.take(session=session, standby=old) is None


def test_a_standby_still_in_its_window_does_not_expire(
    session: Session, app: App, staging: Environment
) -> None:
    old = _replaced(session, app, staging, seconds=300)
    assert standby.expired(session=session) == []
    assert standby.expire(session=session, deployment_id=old.id) is False


def test_the_environment_keeps_replaced_releases_standing_by_five_minutes_by_default(
    session: Session, staging: Environment
) -> None:
    assert standby.standby_seconds(session=session, environment_id=staging.id) == 300.0


def test_one_release_stands_by_per_environment_the_last_one_replaced(
    session: Session, app: App, staging: Environment
) -> None:
    first = _replaced(session, app, staging, seconds=300)  # v1 standing by, v2 live
    second = deployments.live_deployment(session=session, environment_id=staging.id)
    assert second is not None
    _deploy(session, app, staging, "c")  # v3 replaces v2, which stands by in turn
    standby.stand_by(
        session=session, deployment_id=second.id, environment_id=staging.id, seconds=300
    )
    session.commit()

    assert [d.id for d in standby.expired(session=session)] == [first.id]  # its window ended
    found = standby.standing_by(
        session=session, environment_id=staging.id, release_id=second.release_id
    )
    assert found is not None and found.id == second.id
