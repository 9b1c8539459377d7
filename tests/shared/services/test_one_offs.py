"""One-off commands in the store: which release one runs in, where, and its guarded steps."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from shipyard.shared.exceptions import InvalidInput, NotFound
from shipyard.shared.models import App, Deployment, DeploymentStatus, Environment, OneOffStatus
from shipyard.shared.schemas import OneOffCreate
from shipyard.shared.services import one_offs
from tests.shared.factories import make_artifact, make_release


def _placed(session: Session, environment: Environment, host: str = "alpha") -> None:
    environment.run_host = host
    session.add(environment)
    session.commit()


def test_a_one_off_runs_in_the_live_release_else_the_newest_else_the_one_asked_for(
    session: Session, app: App, staging: Environment
) -> None:
    v1 = make_release(session, app, staging, make_artifact(session, app, "one"))
    v2 = make_release(session, app, staging, make_artifact(session, app, "two"))

    # Nothing live yet (a first deploy whose health check needs the set-up step): the newest.
    assert one_offs.target_release(session=session, environment=staging, version=None) == v2
    session.add(
        Deployment(environment_id=staging.id, release_id=v1.id, status=DeploymentStatus.LIVE)
    )
    session.commit()
    assert one_offs.target_release(session=session, environment=staging, version=None) == v1
    assert one_offs.target_release(session=session, environment=staging, version=2) == v2
    with pytest.raises(NotFound, match="no release v9"):
        one_offs.target_release(session=session, environment=staging, version=9)


def test_a_one_off_needs_a_release_and_a_run_host(
    session: Session, app: App, staging: Environment
) -> None:
    data = OneOffCreate(command="flask init-db")
    with pytest.raises(InvalidInput, match="no release yet: deploy it first"):
        one_offs.create(session=session, environment=staging, data=data, requested_by="admin")
    make_release(session, app, staging, make_artifact(session, app))
    with pytest.raises(InvalidInput, match="not placed on a run host yet"):
        one_offs.create(session=session, environment=staging, data=data, requested_by="admin")


def test_a_one_off_is_started_once_and_its_end_recorded_once(
    session: Session, app: App, staging: Environment
) -> None:
    release = make_release(session, app, staging, make_artifact(session, app))
    _placed(session, staging)
    run = one_offs.create(
        session=session,
        environment=staging,
        data=OneOffCreate(command="flask init-db", timeout=60),
        requested_by="ci",
    )
    session.commit()

    elsewhere = one_offs.claim(session=session, run_id=run.id, host="beta")
    claimed = one_offs.claim(session=session, run_id=run.id, host="alpha")
    claimed_status = claimed.status if claimed is not None else None
    again = one_offs.claim(session=session, run_id=run.id, host="alpha")
    one_offs.finish(
        session=session, run_id=run.id, status=OneOffStatus.FAILED, exit_code=3, output="tail"
    )
    one_offs.finish(
        session=session, run_id=run.id, status=OneOffStatus.SUCCEEDED, exit_code=0, output=""
    )
    session.commit()

    assert elsewhere is None and again is None
    assert claimed_status == OneOffStatus.RUNNING
    view = one_offs.view(session=session, run=one_offs.get(session=session, run_id=run.id))
    assert (view.status, view.exit_code, view.output) == ("failed", 3, "tail")
    assert (view.app, view.environment, view.release_version) == ("web", "staging", release.version)
    assert view.host == "alpha" and view.requested_by == "ci" and view.duration is not None
    assert not one_offs.cancel_queued(session=session, run_id=run.id)  # it ended already


def test_a_queued_one_off_is_cancelled_in_the_store(
    session: Session, app: App, staging: Environment
) -> None:
    make_release(session, app, staging, make_artifact(session, app))
    _placed(session, staging)
    run = one_offs.create(
        session=session, environment=staging, data=OneOffCreate(command="true"), requested_by="a"
    )
    session.commit()

    assert one_offs.cancel_queued(session=session, run_id=run.id)
    session.commit()

    assert one_offs.claim(session=session, run_id=run.id, host="alpha") is None
    listed = one_offs.of_environment(session=session, environment=staging, limit=10)
    assert [(r.id, r.status) for r in listed] == [(run.id, OneOffStatus.CANCELLED)]
