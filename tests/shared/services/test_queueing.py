"""The deploy queue's lookups: what they match, and SQL whose cost does not grow with history."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql
from sqlmodel import Session, select

from shipyard.shared.models import App, Environment, Pipeline, PipelineStatus, StageRun, StageStatus
from shipyard.shared.services import queueing
from tests.shared.factories import make_artifact, make_pipeline


def test_active_pipelines_are_selected_with_their_statuses_written_into_the_sql() -> None:
    # Bound as parameters, the statuses would leave a prepared statement's generic plan blind
    # to how few rows they match: it read every pipeline of the database on each claim.
    query = select(Pipeline.id).where(queueing.active())

    sql = str(
        query.compile(dialect=postgresql.dialect(), compile_kwargs={"render_postcompile": True})
    )

    assert "pipeline.status IN ('queued', 'running')" in sql


def test_the_oldest_waiting_pipeline_is_woken_and_finished_ones_are_never_looked_at(
    session: Session, app: App, staging: Environment
) -> None:
    finished = make_pipeline(session, app, staging)
    first = make_pipeline(session, app, staging)
    second = make_pipeline(session, app, staging)
    finished.status = PipelineStatus.SUCCEEDED
    artifact = make_artifact(session, app)
    for pipeline in (finished, first, second):  # a finished pipeline's row may say anything
        pipeline.artifact_id = artifact.id  # built: their release stages wait at the gate
        session.add(pipeline)
        run = session.exec(
            select(StageRun).where(StageRun.pipeline_id == pipeline.id, StageRun.name == "release")
        ).one()
        run.status = StageStatus.WAITING
        session.add(run)
    session.commit()

    event = queueing.wake_next(session=session, environment_id=staging.id)

    assert event is not None and event.pipeline_id == first.id
    assert queueing.wake_next(session=session, environment_id=staging.id) is None  # first ahead
