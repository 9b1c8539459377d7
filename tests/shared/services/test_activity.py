"""An environment's activity: each release's live span, and what triggered each deployment."""

from __future__ import annotations

from sqlmodel import Session

from shipyard.shared.models import App, Environment, Release
from shipyard.shared.services import activity, deployments, pipelines
from shipyard.shared.settings import Settings
from shipyard.shared.stages import PipelineKind
from tests.shared.factories import make_artifact, make_release


def _run(
    session: Session, app: App, environment: Environment, release: Release, trigger: str
) -> None:
    """Take `release` live through a pipeline started by `trigger`, as its run stage would."""
    pipeline = pipelines.create_pipeline(
        session=session,
        app=app,
        environment=environment,
        kind=PipelineKind.ROLLBACK,
        trigger=trigger,
        release_id=release.id,
    )
    deployment = deployments.begin_deployment(
        session=session, pipeline_id=pipeline.id, release=release, cause="rollback"
    )
    assert deployment is not None
    deployments.go_live(session=session, deployment=deployment, processes=[])
    session.commit()


def test_a_release_run_again_is_live_since_its_latest_start(
    session: Session, app: App, staging: Environment
) -> None:
    one = make_release(session, app, staging, make_artifact(session, app, "one"))
    two = make_release(session, app, staging, make_artifact(session, app, "two"))
    _run(session, app, staging, one, "api")
    _run(session, app, staging, two, "api")
    _run(session, app, staging, one, "dashboard")

    entries = {
        e.release.version: e for e in activity.release_history(session=session, environment=staging)
    }
    history = activity.deployment_history(session=session, environment=staging, limit=10)

    assert list(entries) == [2, 1]
    assert entries[1].live and not entries[2].live
    assert entries[1].first_live is not None and entries[1].last_live is not None
    assert entries[1].first_live < entries[1].last_live
    assert entries[2].live_until == entries[1].last_live
    assert [(h.deployment.release_version, h.trigger) for h in history] == [
        (1, "dashboard"),
        (2, "api"),
        (1, "api"),
    ]


def test_a_release_that_never_ran_has_no_span(
    session: Session, app: App, staging: Environment
) -> None:
    make_release(session, app, staging, make_artifact(session, app))

    [entry] = activity.release_history(session=session, environment=staging)

    assert (entry.first_live, entry.last_live, entry.live) == (None, None, False)
    assert entry.trigger == "api"  # the factory's deploy pipeline


def test_the_summary_has_the_stable_url_and_nothing_live(
    session: Session, settings: Settings, app: App, staging: Environment
) -> None:
    [summary] = activity.app_summary(session=session, settings=settings, app=app)

    assert summary.environment.url == f"http://staging.web.localhost:{settings.router_port}"
    assert summary.current is None
    assert activity.recent_pipelines(session=session, environment=staging, limit=5) == []
