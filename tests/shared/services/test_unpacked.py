"""Which unpacked artifacts a run host keeps: what runs, what is wanted, the newest releases."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session

from shipyard.shared.models import (
    App,
    Deployment,
    DeploymentStatus,
    Environment,
    OneOff,
    OneOffStatus,
    Pipeline,
    PipelineStatus,
    Release,
)
from shipyard.shared.services import unpacked
from tests.shared.factories import make_artifact, make_release


def _release(session: Session, app: App, environment: Environment, label: str) -> Release:
    """A release of its own artifact, whose pipeline has finished."""
    release = make_release(session, app, environment, make_artifact(session, app, label))
    pipeline = session.get(Pipeline, release.pipeline_id)
    assert pipeline is not None
    pipeline.status = PipelineStatus.SUCCEEDED
    session.add(pipeline)
    session.commit()
    return release


def _deployment(
    session: Session, release: Release, status: DeploymentStatus, *, retired: bool = False
) -> None:
    session.add(
        Deployment(
            environment_id=release.environment_id,
            release_id=release.id,
            status=status,
            retired_at=datetime.now(UTC) if retired else None,
        )
    )
    session.commit()


def test_a_host_keeps_what_runs_what_is_wanted_and_the_newest_releases(
    session: Session, app: App, staging: Environment, production: Environment
) -> None:
    old, retired, draining, live, newest = (
        _release(session, app, staging, label)
        for label in ("old", "retired", "draining", "live", "new")
    )
    _deployment(session, retired, DeploymentStatus.SUPERSEDED, retired=True)
    _deployment(session, draining, DeploymentStatus.SUPERSEDED)  # its processes still stop
    _deployment(session, live, DeploymentStatus.LIVE)
    promoted = _release(session, app, production, "promoted")
    later = _release(session, app, production, "later")  # the newest there: not `promoted`
    rollback = Pipeline(
        app_id=app.id,
        environment_id=production.id,
        kind="rollback",
        status=PipelineStatus.QUEUED,
        release_id=promoted.id,
    )
    session.add(rollback)
    session.add(Pipeline(app_id=app.id, environment_id=staging.id, artifact_id=old.artifact_id))
    session.commit()

    keep = unpacked.artifacts_to_keep(session=session, app_id=app.id, warm=1)
    everything = unpacked.artifacts_to_keep(session=session, app_id=app.id, warm=10)

    # Running or draining, wanted by an unfinished pipeline, the newest of each environment.
    assert keep == {
        draining.artifact_id,
        live.artifact_id,
        old.artifact_id,
        newest.artifact_id,
        promoted.artifact_id,
        later.artifact_id,
    }
    assert retired.artifact_id not in keep
    assert retired.artifact_id in everything  # among the ten newest


def test_a_host_keeps_the_release_of_a_one_off_that_is_queued_or_running(
    session: Session, app: App, staging: Environment
) -> None:
    old, ended, _newest = (
        _release(session, app, staging, label) for label in ("old", "ended", "new")
    )
    for release, status in ((old, OneOffStatus.RUNNING), (ended, OneOffStatus.SUCCEEDED)):
        session.add(
            OneOff(
                environment_id=staging.id,
                release_id=release.id,
                command="flask --app blog seed-db",
                host="alpha",
                requested_by="admin",
                timeout=60,
                status=status,
            )
        )
    session.commit()

    keep = unpacked.artifacts_to_keep(session=session, app_id=app.id, warm=1)

    assert old.artifact_id in keep and ended.artifact_id not in keep
