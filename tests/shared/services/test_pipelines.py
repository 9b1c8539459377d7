"""Pipelines: made with their stage runs, started (or failed when the broker is away), shown
(in one statement)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from shipyard.shared.db import StatementCounter
from shipyard.shared.events import ArtifactBuilt, Event, PipelineQueued
from shipyard.shared.exceptions import NotFound, ServiceUnavailable
from shipyard.shared.models import (
    App,
    ConfigVersion,
    Deployment,
    Environment,
    Pipeline,
    PipelineStatus,
    StageStatus,
)
from shipyard.shared.schemas import PipelinePublic, RolloutPlan
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


def test_the_view_of_a_pipeline_is_one_statement_in_stage_order(
    session: Session, app: App, staging: Environment
) -> None:
    pipeline = make_pipeline(session, app, staging, PipelineKind.DEPLOY)
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    connection, pipeline_id = session.connection(), pipeline.id

    with StatementCounter(engine) as counter:
        view = pipelines.pipeline_view(connection=connection, pipeline_id=pipeline_id)

    assert len(counter.statements) == 1
    assert view == pipelines.pipeline_public(session=session, pipeline=pipeline)
    shown = view.model_dump(exclude={"app", "environment", "stages", "rollout_record"})
    assert shown == {name: getattr(pipeline, name) for name in shown}
    assert [stage.name for stage in view.stages] == ["build", "release", "run"]
    assert view.rollout_record is None


def test_a_pipeline_not_in_the_store_is_not_found(session: Session) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFound, match=str(missing)):
        pipelines.pipeline_view(connection=session.connection(), pipeline_id=missing)


def test_only_a_pipeline_with_a_plan_shows_its_deployments_rollout_record(
    session: Session, app: App, staging: Environment
) -> None:
    release = make_release(session, app, staging, make_artifact(session, app))
    assert release.pipeline_id is not None
    pipeline = session.get(Pipeline, release.pipeline_id)
    assert pipeline is not None
    record = {"state": "canary", "share": 10, "plan": {"canary": [10, 100]}, "steps": []}
    session.add(
        Deployment(
            environment_id=staging.id,
            release_id=release.id,
            pipeline_id=pipeline.id,
            processes=[],
            rollout=record,
        )
    )
    session.commit()

    def shown() -> PipelinePublic:
        return pipelines.pipeline_view(connection=session.connection(), pipeline_id=pipeline.id)

    assert shown().rollout_record is None  # no plan: went live at once, whatever was recorded
    pipeline.rollout = RolloutPlan(canary=[10, 100]).model_dump(mode="json")
    session.add(pipeline)
    session.commit()
    assert shown().rollout_record is not None and shown().rollout_record.share == 10  # type: ignore[union-attr]


def test_a_pipeline_is_written_in_two_statements_and_stays_the_sessions(
    session: Session, app: App, staging: Environment
) -> None:
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    session.refresh(app), session.refresh(staging)  # loaded before counting

    with StatementCounter(engine) as counter:
        pipeline = pipelines.create_pipeline(
            session=session, app=app, environment=staging, kind=PipelineKind.DEPLOY, trigger="api"
        )

    assert [s.split()[0] for s in counter.statements] == ["INSERT", "INSERT"]
    assert pipeline in session and pipeline not in session.new  # as if loaded: no INSERT again
    pipeline.error = "changed in the same session"
    session.commit()
    stored = session.get(Pipeline, pipeline.id)
    assert stored is pipeline and stored.error == "changed in the same session"
    runs = stage_runs.stages_of(session=session, pipeline_id=pipeline.id)
    assert [(r.name, r.status, r.attempt, r.queued_at is not None) for r in runs] == [
        ("build", "queued", 0, True),
        ("release", "pending", 0, False),
        ("run", "pending", 0, False),
    ]


def test_launching_ends_its_read_back_with_a_commit(
    session: Session, app: App, staging: Environment
) -> None:
    # A ROLLBACK would make psycopg forget the connection's prepared statements.
    pipeline = pipelines.create_pipeline(
        session=session, app=app, environment=staging, kind=PipelineKind.DEPLOY, trigger="api"
    )
    pipeline_id = pipeline.id
    sent: list[object] = []

    view = pipelines.launch(session=session, pipeline=pipeline, publish=sent.append)

    assert not session.in_transaction()  # before anything reloads the (expired) pipeline
    assert view.id == pipeline_id
    assert [e.pipeline_id for e in sent] == [pipeline_id]  # type: ignore[attr-defined]
