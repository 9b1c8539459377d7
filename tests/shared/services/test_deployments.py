"""Deployments: going live supersedes the previous one; at most one is live per environment."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from shipyard.shared.models import (
    App,
    Deployment,
    DeploymentStatus,
    Environment,
    Release,
    ReleaseStatus,
)
from shipyard.shared.services import deployments, routes
from tests.shared.factories import make_artifact, make_pipeline, make_release

WEB = {"type": "web", "status": "running", "url": "http://127.0.0.1:5000", "pid": 1}


def _begin(session: Session, release: Release) -> Deployment:
    assert release.pipeline_id is not None
    deployment = deployments.begin_deployment(
        session=session, pipeline_id=release.pipeline_id, release=release, cause="deploy"
    )
    assert deployment is not None
    session.commit()
    return deployment


def _deploy(session: Session, app: App, environment: Environment, label: str) -> Deployment:
    release = make_release(session, app, environment, make_artifact(session, app, label))
    deployment = _begin(session, release)
    deployments.go_live(session=session, deployment=deployment, processes=[WEB])
    session.commit()
    return deployment


def test_go_live_makes_the_first_deployment_live_and_its_release_succeeded(
    session: Session, app: App, staging: Environment
) -> None:
    release = make_release(session, app, staging, make_artifact(session, app))
    deployment = _begin(session, release)
    assert deployment.status == DeploymentStatus.STARTING

    previous = deployments.go_live(session=session, deployment=deployment, processes=[WEB])
    session.commit()

    assert previous is None
    assert deployment.status == DeploymentStatus.LIVE
    assert deployment.started_at is not None and deployment.ended_at is None
    assert deployment.processes == [WEB]
    session.refresh(release)
    assert release.status == ReleaseStatus.SUCCEEDED
    assert deployments.live_deployment(session=session, environment_id=staging.id) == deployment


def test_go_live_supersedes_the_previous_deployment_and_ends_it(
    session: Session, app: App, staging: Environment
) -> None:
    first = _deploy(session, app, staging, "one")
    release = make_release(session, app, staging, make_artifact(session, app, "two"))
    second = _begin(session, release)

    previous = deployments.go_live(session=session, deployment=second, processes=[WEB])
    session.commit()

    assert previous is not None and previous.id == first.id
    session.refresh(first)
    assert first.status == DeploymentStatus.SUPERSEDED
    assert first.ended_at is not None and second.started_at is not None
    assert first.ended_at == second.started_at
    live = deployments.live_deployment(session=session, environment_id=staging.id)
    assert live is not None and live.id == second.id


def test_going_live_again_does_not_supersede_itself(
    session: Session, app: App, staging: Environment
) -> None:
    deployment = _deploy(session, app, staging, "one")

    assert deployments.go_live(session=session, deployment=deployment, processes=[WEB]) is None
    session.commit()
    assert deployment.status == DeploymentStatus.LIVE


def test_environments_switch_independently(
    session: Session, app: App, staging: Environment, production: Environment
) -> None:
    on_staging = _deploy(session, app, staging, "one")
    on_production = _deploy(session, app, production, "one")

    session.refresh(on_staging)
    assert on_staging.status == DeploymentStatus.LIVE
    assert on_production.status == DeploymentStatus.LIVE
    assert len(deployments.live_deployments(session=session)) == 2


def test_the_partial_unique_index_rejects_a_second_live_row(
    session: Session, app: App, staging: Environment
) -> None:
    _deploy(session, app, staging, "one")
    release = make_release(session, app, staging, make_artifact(session, app, "two"))
    intruder = _begin(session, release)

    # Bypassing go_live: the database itself refuses a second live deployment.
    intruder.status = DeploymentStatus.LIVE
    session.add(intruder)
    with pytest.raises(IntegrityError, match="UNIQUE constraint failed"):
        session.commit()
    session.rollback()


def test_several_non_live_deployments_are_allowed_per_environment(
    session: Session, app: App, staging: Environment
) -> None:
    for label in ("one", "two", "three"):
        _deploy(session, app, staging, label)

    statuses = sorted(d.status for d in session.exec(select(Deployment)).all())
    assert statuses == ["live", "superseded", "superseded"]


def test_begin_deployment_is_idempotent_per_pipeline(
    session: Session, app: App, staging: Environment
) -> None:
    release = make_release(session, app, staging, make_artifact(session, app))
    first = _begin(session, release)

    again = _begin(session, release)

    assert again.id == first.id


def test_a_failed_first_run_fails_its_release(
    session: Session, app: App, staging: Environment
) -> None:
    release = make_release(session, app, staging, make_artifact(session, app))
    deployment = _begin(session, release)

    deployments.fail_deployment(session=session, deployment=deployment, error="web exited")
    session.commit()

    assert (deployment.status, deployment.error) == (DeploymentStatus.FAILED, "web exited")
    assert deployment.ended_at is not None
    session.refresh(release)
    assert release.status == ReleaseStatus.FAILED
    assert deployments.live_deployment(session=session, environment_id=staging.id) is None


def test_current_shows_the_live_release_and_its_processes(
    session: Session, app: App, staging: Environment
) -> None:
    assert deployments.current(session=session, environment=staging) is None
    _deploy(session, app, staging, "one")
    _deploy(session, app, staging, "two")

    current = deployments.current(session=session, environment=staging)

    assert current is not None
    assert current.release.version == 2
    assert current.deployment.release_version == 2
    assert [(p.type, p.url) for p in current.processes] == [("web", "http://127.0.0.1:5000")]


def test_a_replaced_deployment_never_retired_is_found_to_be_stopped(
    session: Session, app: App, staging: Environment
) -> None:
    ids = []
    for _ in range(3):
        release = make_release(session, app, staging, make_artifact(session, app, f"a{len(ids)}"))
        pipeline = make_pipeline(session, app, staging)
        deployment = deployments.begin_deployment(
            session=session, pipeline_id=pipeline.id, release=release, cause="deploy"
        )
        assert deployment is not None
        deployments.go_live(session=session, deployment=deployment, processes=[])
        routes.record_switched(session=session, deployment_id=deployment.id)
        ids.append(deployment.id)
    routes.record_retired(session=session, deployment_id=ids[0])  # its switch ran to the end
    session.commit()

    found = deployments.unretired_deployments(session=session, runner="local")

    assert [d.id for d in found] == [ids[1]]  # replaced mid-drain; the live one is not in it


def _process(kind: str, index: int, pid: int) -> dict[str, object]:
    return {"type": kind, "index": index, "status": "running", "pid": pid}


def test_a_restart_of_one_type_carries_the_others_over_and_replaces_only_that_type(
    session: Session, app: App, staging: Environment
) -> None:
    web, worker_1, worker_2 = (
        _process("web", 1, 10),
        _process("worker", 1, 11),
        _process("worker", 2, 12),
    )
    clock = _process("clock", 1, 13)
    release = make_release(session, app, staging, make_artifact(session, app))
    first = _begin(session, release)
    deployments.go_live(
        session=session, deployment=first, processes=[web, worker_1, worker_2, clock]
    )
    session.commit()
    restart = make_pipeline(session, app, staging)
    second = deployments.begin_deployment(
        session=session, pipeline_id=restart.id, release=release, cause="restart"
    )
    assert second is not None
    new_2, new_1 = _process("worker", 2, 22), _process("worker", 1, 21)

    previous = deployments.go_live(
        session=session, deployment=second, processes=[new_2, new_1], only_type="worker"
    )
    session.commit()

    # What the switch drains and stops: only the workers it replaced.
    assert previous is not None and previous.processes == [worker_1, worker_2]
    # Live now: web and clock as they ran (same records), the new workers in their place.
    assert second.processes == [web, new_1, new_2, clock]
    session.expire_all()
    stored = session.get(Deployment, second.id)
    assert stored is not None and stored.processes == [web, new_1, new_2, clock]
    replaced = session.get(Deployment, first.id)
    assert replaced is not None and replaced.status == DeploymentStatus.SUPERSEDED
    assert replaced.processes == [worker_1, worker_2]  # never the carried ones: they run on
    current = deployments.current(session=session, environment=staging)
    assert current is not None
    assert [(p.type, p.pid) for p in current.processes] == [
        ("web", 10),
        ("worker", 21),
        ("worker", 22),
        ("clock", 13),
    ]


def test_going_live_again_with_one_type_keeps_what_it_carried(
    session: Session, app: App, staging: Environment
) -> None:
    web, worker = _process("web", 1, 10), _process("worker", 1, 11)
    deployment = _deploy(session, app, staging, "one")
    deployments.set_processes(session=session, deployment_id=deployment.id, processes=[web, worker])
    session.commit()
    again = _process("worker", 1, 31)

    previous = deployments.go_live(
        session=session, deployment=deployment, processes=[again], only_type="worker"
    )
    session.commit()

    assert previous is None
    assert deployment.processes == [web, again]
