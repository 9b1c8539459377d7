"""The stages' common frame, in one process: claim, work, record, publish, and what it costs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import event
from sqlmodel import Session, select

from shipyard.shared import migrate
from shipyard.shared.db import StatementCounter, get_engine, session_scope
from shipyard.shared.drivers import RunnerName
from shipyard.shared.events import ArtifactBuilt, Event, ReleaseCreated
from shipyard.shared.models import (
    App,
    Build,
    Deployment,
    Pipeline,
    PipelineStatus,
    StageRun,
    utcnow,
)
from shipyard.shared.schemas import AppCreate, ConfigPatch, EnvironmentCreate
from shipyard.shared.services import apps, pipelines, stage_runs
from shipyard.shared.services.config import patch_config
from shipyard.shared.services.stage_runs import ClaimOutcome
from shipyard.shared.settings import Settings
from shipyard.shared.stages import PipelineKind
from shipyard.workers.context import WorkerContext
from shipyard.workers.stages import frame, release
from shipyard.workers.stages.build import build_work
from shipyard.workers.stages.release import release_work
from shipyard.workers.stages.run import run_work
from tests.repos import commit_files

WORK = {"build": build_work, "release": release_work, "run": run_work}


@pytest.fixture
def context(tmp_path: Path) -> Iterator[WorkerContext]:
    """A worker context on a migrated SQLite file of this test's own."""
    settings = Settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    migrate.upgrade(settings.sqlalchemy_url)
    yield WorkerContext.create(settings, Celery("shipyard-tests"))
    get_engine(settings.sqlalchemy_url).dispose()


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[Event]:
    """What the frame publishes, in order, instead of sending it to a broker."""
    sent: list[Event] = []
    monkeypatch.setattr(frame, "publish", lambda _celery, event: sent.append(event))
    return sent


def _deploy_pipeline(
    context: WorkerContext,
    repo: Path,
    *,
    runner: RunnerName = "noop",
    config: ConfigPatch | None = None,
) -> Pipeline:
    """A queued deploy pipeline of an app built by the noop builder at `repo`'s main, run by
    `runner`, with `config` set on its environment first."""
    with session_scope(context.db_url) as session:
        app = apps.create_app(
            session=session, data=AppCreate(name="web", repo=str(repo), builder="noop")
        )
        environment = apps.create_environment(
            session=session, app=app, data=EnvironmentCreate(name="staging", runner=runner)
        )
        if config is not None:
            patch_config(session=session, environment=environment, patch=config, box=context.box)
        return pipelines.create_pipeline(
            session=session,
            app=app,
            environment=environment,
            kind=PipelineKind.DEPLOY,
            trigger="api",
            ref="main",
        )


@pytest.fixture
def pipeline(context: WorkerContext, repo: Path) -> Pipeline:
    """A queued deploy pipeline of a noop app (noop builder and runner) at `repo`'s main."""
    return _deploy_pipeline(context, repo)


def _execute(context: WorkerContext, pipeline: Pipeline, stage: str) -> ClaimOutcome:
    return frame.execute(context, pipeline.id, stage, f"{stage}@test", WORK[stage])


def _stored(context: WorkerContext, pipeline: Pipeline) -> tuple[Pipeline, dict[str, StageRun]]:
    with Session(get_engine(context.db_url)) as session:
        stored = session.get(Pipeline, pipeline.id)
        assert stored is not None
        runs = session.exec(select(StageRun).where(StageRun.pipeline_id == pipeline.id))
        return stored, {run.name: run for run in runs}


def _build_row(context: WorkerContext, pipeline: Pipeline) -> Build:
    with Session(get_engine(context.db_url)) as session:
        return session.exec(select(Build).where(Build.pipeline_id == pipeline.id)).one()


def _take_over_build(context: WorkerContext, pipeline: Pipeline) -> None:
    """What another worker's takeover claim does to the running build stage: a new attempt."""
    with session_scope(context.db_url) as session:
        run = session.exec(
            select(StageRun).where(StageRun.pipeline_id == pipeline.id, StageRun.name == "build")
        ).one()
        run.attempt += 1
        session.add(run)


def test_the_three_stages_record_their_results_and_publish_only_ids(
    context: WorkerContext, pipeline: Pipeline, published: list[Event]
) -> None:
    for stage in ("build", "release", "run"):
        assert _execute(context, pipeline, stage) == ClaimOutcome.CLAIMED

    stored, runs = _stored(context, pipeline)
    assert stored.status == PipelineStatus.SUCCEEDED and stored.finished_at is not None
    assert all(run.status == "succeeded" and run.attempt == 1 for run in runs.values())
    assert stored.artifact_id is not None and stored.artifact_id.startswith("sha256:")
    assert stored.release_id is not None and stored.deployment_id is not None
    assert published == [
        ArtifactBuilt(pipeline_id=pipeline.id, artifact_id=stored.artifact_id),
        ReleaseCreated(pipeline_id=pipeline.id, release_id=stored.release_id),
    ]
    assert runs["build"].result_id == stored.artifact_id


def test_a_run_stage_of_an_app_destroyed_meanwhile_fails_and_runs_nothing(
    context: WorkerContext, pipeline: Pipeline, published: list[Event]
) -> None:
    for stage in ("build", "release"):
        assert _execute(context, pipeline, stage) == ClaimOutcome.CLAIMED
    with session_scope(context.db_url) as session:  # as a destroy racing the pipeline would
        app = session.exec(select(App)).one()
        app.destroyed_at = utcnow()
        session.add(app)

    _execute(context, pipeline, "run")

    stored, runs = _stored(context, pipeline)
    assert stored.status == PipelineStatus.FAILED
    assert "its app was destroyed" in (runs["run"].error or "")
    with Session(get_engine(context.db_url)) as session:
        assert session.exec(select(Deployment)).all() == []


def test_the_build_row_is_finished_with_the_stage_result_in_one_transaction(
    context: WorkerContext, pipeline: Pipeline, published: list[Event]
) -> None:
    # The build's work is done, but another worker took the stage over before the result was
    # recorded: neither the stage nor the build row may carry this attempt's result.
    def taken_over_meanwhile(context: WorkerContext, claimed: Pipeline) -> frame.StageResult:
        result = build_work(context, claimed)
        _take_over_build(context, claimed)
        return result

    frame.execute(context, pipeline.id, "build", "slow@test", taken_over_meanwhile)

    stored, runs = _stored(context, pipeline)
    assert runs["build"].status == "running" and runs["build"].result_id is None
    assert stored.artifact_id is None and published == []
    build = _build_row(context, pipeline)
    assert build.finished_at is None and build.artifact_id is None


def test_a_duplicate_message_for_a_finished_stage_does_nothing(
    context: WorkerContext, pipeline: Pipeline, published: list[Event]
) -> None:
    assert _execute(context, pipeline, "build") == ClaimOutcome.CLAIMED

    assert _execute(context, pipeline, "build") == ClaimOutcome.DONE

    _stored_pipeline, runs = _stored(context, pipeline)
    assert runs["build"].attempt == 1 and len(published) == 1


def test_claiming_a_stage_past_the_gate_takes_two_statements(
    context: WorkerContext, pipeline: Pipeline, published: list[Event]
) -> None:
    # The claim is on every stage's path: read the pipeline, then one conditional UPDATE that
    # claims the stage and returns it. (The first stage also marks the pipeline running; the
    # gate stage also takes the environment's lock.)
    for stage in ("build", "release"):
        assert _execute(context, pipeline, stage) == ClaimOutcome.CLAIMED
    statements: list[str] = []
    engine = get_engine(context.db_url)

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement.split()[0].upper())

    event.listen(engine, "before_cursor_execute", record)
    try:
        with session_scope(context.db_url) as session:
            claim = stage_runs.claim_stage(
                session=session,
                pipeline_id=pipeline.id,
                stage="run",
                hostname="run@test",
                stale_after=60,
            )
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert claim.outcome == ClaimOutcome.CLAIMED and claim.pipeline is not None
    assert [s for s in statements if s not in ("BEGIN", "COMMIT")] == ["SELECT", "UPDATE"]


def _point_at(context: WorkerContext, pipeline: Pipeline, ref: str) -> None:
    with session_scope(context.db_url) as session:
        stored = session.get(Pipeline, pipeline.id)
        assert stored is not None
        stored.ref = ref
        session.add(stored)


def test_a_failed_build_records_its_log_with_the_stage_failure(
    context: WorkerContext, pipeline: Pipeline, published: list[Event]
) -> None:
    _point_at(context, pipeline, "no-such-branch")

    assert _execute(context, pipeline, "build") == ClaimOutcome.CLAIMED

    stored, runs = _stored(context, pipeline)
    assert stored.status == PipelineStatus.FAILED and runs["build"].status == "failed"
    assert "does not name a commit" in (runs["build"].error or "")
    build = _build_row(context, pipeline)
    assert build.finished_at is not None and "does not name a commit" in build.log


def test_a_taken_over_build_that_then_fails_leaves_the_build_row_to_the_winner(
    context: WorkerContext, pipeline: Pipeline, published: list[Event]
) -> None:
    _point_at(context, pipeline, "no-such-branch")

    def fails_after_a_takeover(context: WorkerContext, claimed: Pipeline) -> frame.StageResult:
        _take_over_build(context, claimed)
        return build_work(context, claimed)

    frame.execute(context, pipeline.id, "build", "slow@test", fails_after_a_takeover)

    stored, runs = _stored(context, pipeline)
    assert stored.status == PipelineStatus.RUNNING and runs["build"].status == "running"
    build = _build_row(context, pipeline)
    assert build.finished_at is None and build.log == ""


SECRET = "s3cr3t-release-output-value"


@pytest.mark.parametrize("exit_code", [0, 3], ids=["succeeds", "fails"])
def test_a_release_command_printing_a_secret_keeps_it_out_of_the_store_and_the_api(
    context: WorkerContext,
    published: list[Event],
    repo: Path,
    exit_code: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No broker here: the release phase's lock (a Redis lock) is not what this test is about.
    monkeypatch.setattr(release, "release_phase_lock", lambda *_args: nullcontext())
    commit_files(
        repo, {"Procfile": f"web: true\nrelease: echo migrating with $API_KEY; exit {exit_code}\n"}
    )
    pipeline = _deploy_pipeline(
        context,
        repo,
        runner="local",
        config=ConfigPatch(vars={"API_KEY": SECRET}, secrets=["API_KEY"]),
    )

    for stage in ("build", "release"):
        assert _execute(context, pipeline, stage) == ClaimOutcome.CLAIMED

    _stored_pipeline, runs = _stored(context, pipeline)
    assert runs["release"].status == ("succeeded" if exit_code == 0 else "failed")
    assert runs["release"].output == "migrating with <redacted>\n"
    with Session(get_engine(context.db_url)) as session:
        stored = pipelines.get_pipeline(session=session, pipeline_id=pipeline.id)
        served = pipelines.pipeline_public(session=session, pipeline=stored)
    assert "migrating with <redacted>" in served.model_dump_json()
    assert SECRET not in served.model_dump_json()


# What each stage of a noop deploy costs the store: statements (BEGIN, COMMIT and savepoints not
# counted) and transactions, with the previous deployment replaced in the run stage. A change
# that makes a stage's hot path do more must show up here (and in docs/benchmarks.md).
STAGE_BUDGET = {
    "build": (13, 5),
    # +1 (15): the run stage it queues goes to its environment's run host, read on the way.
    "release": (15, 3),
    "run": (21, 6),
}


def test_no_stage_does_more_statements_or_transactions_than_its_budget(
    context: WorkerContext, pipeline: Pipeline, published: list[Event], repo: Path
) -> None:
    for stage in ("build", "release", "run"):  # the first deploy: nothing to replace yet
        assert _execute(context, pipeline, stage) == ClaimOutcome.CLAIMED
    commit_files(repo, {"VERSION": "2\n"}, "second")
    with session_scope(context.db_url) as session:
        second = pipelines.create_pipeline(
            session=session,
            app=apps.get_app(session=session, name="web"),
            environment=apps.get_environment(
                session=session, app=apps.get_app(session=session, name="web"), name="staging"
            ),
            kind=PipelineKind.DEPLOY,
            trigger="api",
            ref="main",
        )
    engine = get_engine(context.db_url)
    costs = {}
    for stage in ("build", "release", "run"):
        with StatementCounter(engine) as counter:
            assert _execute(context, second, stage) == ClaimOutcome.CLAIMED
        costs[stage] = (len(counter.statements), counter.commits)

    over = {
        stage: (cost, STAGE_BUDGET[stage])
        for stage, cost in costs.items()
        if cost[0] > STAGE_BUDGET[stage][0] or cost[1] > STAGE_BUDGET[stage][1]
    }
    assert not over, f"(statements, transactions) over budget: {over}"
    stored, _runs = _stored(context, second)
    assert stored.status == PipelineStatus.SUCCEEDED
