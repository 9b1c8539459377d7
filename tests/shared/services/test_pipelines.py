"""Pipelines: made with their stage runs, started (or failed when the broker is away), shown."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from shipyard.shared.events import ArtifactBuilt, Event, PipelineQueued
from shipyard.shared.exceptions import ServiceUnavailable
from shipyard.shared.models import (
    App,
    ConfigVersion,
    Environment,
    Pipeline,
    PipelineStatus,
    StageStatus,
)
from shipyard.shared.services import deployments, pipelines, stage_runs
from shipyard.shared.stages import PipelineKind
from tests.shared.factories import make_artifact, make_pipeline, make_release


def _statuses(session: Session, pipeline: Pipeline) -> dict[str, str]:
    runs = stage_runs.stages_of(session=session, pipeline_id=pipeline.id)
    return {run.name: run.status for run in runs}


def test_a_deploy_pipeline_has_build_release_run_with_build_queued(
    session: Session, app: App, staging: Environment
) -> None:
    pipeline = make_pipeline(session, app, staging)

    runs = stage_runs.stages_of(session=session, pipeline_id=pipeline.id)
    assert [(r.name, r.status) for r in runs] == [
        ("build", StageStatus.QUEUED),
        ("release", StageStatus.PENDING),
        ("run", StageStatus.PENDING),
    ]
    assert runs[0].queued_at is not None and runs[1].queued_at is None
    assert pipeline.status == PipelineStatus.QUEUED


def test_a_config_pipeline_starts_at_release_from_the_live_artifact(
    session: Session, app: App, staging: Environment
) -> None:
    artifact = make_artifact(session, app)
    release = make_release(session, app, staging, artifact)
    assert release.pipeline_id is not None
    deployment = deployments.begin_deployment(
        session=session, pipeline_id=release.pipeline_id, release=release, cause="deploy"
    )
    assert deployment is not None
    deployments.go_live(session=session, deployment=deployment, processes=[])
    session.commit()
    live_config = session.get(ConfigVersion, release.config_version_id)
    assert live_config is not None
    assert (
        pipelines.create_config_pipeline(
            session=session, app=app, environment=staging, config=live_config, trigger="api"
        )
        is None
    )  # the live release already runs this config
    newer = ConfigVersion(environment_id=staging.id, version=live_config.version + 1)
    session.add(newer)
    session.commit()

    pipeline = pipelines.create_config_pipeline(
        session=session, app=app, environment=staging, config=newer, trigger="api"
    )

    assert pipeline is not None
    assert _statuses(session, pipeline) == {"release": "queued", "run": "pending"}
    assert pipelines.first_event(session, pipeline) == ArtifactBuilt(
        pipeline_id=pipeline.id, artifact_id=artifact.id
    )


def test_without_a_live_deployment_there_is_no_config_pipeline(
    session: Session, app: App, staging: Environment
) -> None:
    config = ConfigVersion(environment_id=staging.id, version=2)
    session.add(config)
    session.commit()

    pipeline = pipelines.create_config_pipeline(
        session=session, app=app, environment=staging, config=config, trigger="api"
    )

    assert pipeline is None


def test_start_publishes_one_event_carrying_only_the_pipeline_id(
    session: Session, app: App, staging: Environment
) -> None:
    pipeline = make_pipeline(session, app, staging)
    published: list[Event] = []

    pipelines.start(session=session, pipeline=pipeline, publish=published.append)

    assert published == [PipelineQueued(pipeline_id=pipeline.id)]
    assert published[0].model_dump(mode="json") == {
        "pipeline_id": str(pipeline.id),
        "type": "pipeline.queued",
    }


def test_when_the_broker_is_away_start_fails_the_pipeline_and_says_so(
    session: Session, app: App, staging: Environment
) -> None:
    pipeline = make_pipeline(session, app, staging)

    def unreachable(_event: Event) -> None:
        raise ConnectionRefusedError("broker down")

    with pytest.raises(ServiceUnavailable, match="broker is unavailable"):
        pipelines.start(session=session, pipeline=pipeline, publish=unreachable)

    session.expire_all()
    stored = pipelines.get_pipeline(session=session, pipeline_id=pipeline.id)
    assert stored.status == PipelineStatus.FAILED
    assert stored.error is not None and "broker could not be reached" in stored.error
    assert _statuses(session, stored)["run"] == StageStatus.SKIPPED


def test_the_public_view_names_app_environment_and_stages(
    session: Session, app: App, staging: Environment
) -> None:
    pipeline = make_pipeline(session, app, staging, PipelineKind.DEPLOY)

    public = pipelines.pipeline_public(session=session, pipeline=pipeline)

    assert (public.app, public.environment, public.kind) == ("web", "staging", "deploy")
    assert [(s.name, s.status) for s in public.stages] == [
        ("build", "queued"),
        ("release", "pending"),
        ("run", "pending"),
    ]
