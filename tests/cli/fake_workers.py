"""A publisher that plays the worker pools for the CLI's tests, inside the API's publish call."""

from __future__ import annotations

import uuid

import redis
from sqlmodel import Session

from shipyard.shared import build_stream
from shipyard.shared.db import get_engine
from shipyard.shared.events import Event
from shipyard.shared.models import App, Pipeline
from shipyard.shared.services import deployments, pipelines, releases, stage_runs
from shipyard.shared.settings import Settings
from tests.shared.factories import make_artifact

WEB_URL = "http://127.0.0.1:5000"


class FakeWorkers:
    """Every stage of a published pipeline succeeds at once, or fails with the error a test
    sets in `failures`; results are recorded through the services, as the real stages record
    them, without running anything. While `paused`, messages are only kept."""

    def __init__(self, settings: Settings, broker: redis.Redis | None = None) -> None:
        self.settings = settings
        self.broker = broker  # where a stage's live output goes, if a test gives one
        self.printed: dict[str, list[str]] = {}  # stage → the lines it prints as it runs
        self.failures: dict[str, str] = {}  # stage → its error
        self.paused = False
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if not self.paused:
            self.work(event.pipeline_id)

    def work(self, pipeline_id: uuid.UUID) -> None:
        """Run the pipeline's remaining stages to its end."""
        with Session(get_engine(self.settings.sqlalchemy_url)) as session:
            pipeline = pipelines.get_pipeline(session=session, pipeline_id=pipeline_id)
            for run in stage_runs.stages_of(session=session, pipeline_id=pipeline_id):
                if run.status not in ("queued", "pending"):
                    continue
                if self.broker is not None:
                    key = build_stream.stream_key(self.settings.broker_namespace, pipeline_id)
                    for line in self.printed.get(run.name, []):
                        build_stream.append(self.broker, key, line)
                if run.name in self.failures:
                    stage_runs.fail_stage(
                        session=session,
                        pipeline=pipeline,
                        stage=run.name,
                        error=self.failures[run.name],
                    )
                    break
                result_id = getattr(self, f"_{run.name}")(session, pipeline)
                stage_runs.complete_stage(
                    session=session, pipeline=pipeline, stage=run.name, result_id=result_id
                )
            session.commit()

    def _build(self, session: Session, pipeline: Pipeline) -> str:
        app = session.get(App, pipeline.app_id)
        assert app is not None
        artifact = make_artifact(session, app, label=pipeline.ref or "HEAD")
        pipeline.artifact_id = artifact.id
        return artifact.id

    def _release(self, session: Session, pipeline: Pipeline) -> str:
        assert pipeline.artifact_id is not None
        release = releases.create_release(
            session=session,
            pipeline=pipeline,
            artifact_id=pipeline.artifact_id,
            cause=releases.release_cause(pipeline),
            source_release_id=pipeline.source_release_id,
        )
        pipeline.release_id = release.id
        return str(release.id)

    def _run(self, session: Session, pipeline: Pipeline) -> str:
        assert pipeline.release_id is not None
        release = releases.get_release(session=session, release_id=pipeline.release_id)
        deployment = deployments.begin_deployment(
            session=session,
            pipeline_id=pipeline.id,
            release=release,
            cause=deployments.deployment_cause(pipeline, release),
        )
        assert deployment is not None
        web = {"type": "web", "status": "running", "url": WEB_URL}
        deployments.go_live(session=session, deployment=deployment, processes=[web])
        return str(deployment.id)
