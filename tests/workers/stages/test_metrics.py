"""What the stage frame counts: stage durations by result, finished pipelines, the build cache.

In one process, prometheus-client counts in memory (no multiprocess directory is set here), so
the default registry holds the figures; each test compares them before and after.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from prometheus_client import REGISTRY
from sqlmodel import select

from shipyard.shared import constants, migrate
from shipyard.shared.db import get_engine, session_scope
from shipyard.shared.events import Event
from shipyard.shared.exceptions import StageFailed
from shipyard.shared.models import App, Pipeline, StageRun
from shipyard.shared.schemas import AppCreate, EnvironmentCreate
from shipyard.shared.services import apps, pipelines
from shipyard.shared.services.stage_runs import ClaimOutcome
from shipyard.shared.settings import Settings
from shipyard.shared.stages import PipelineKind
from shipyard.workers.context import WorkerContext
from shipyard.workers.stages import frame
from shipyard.workers.stages.build import build_work
from shipyard.workers.stages.release import release_work
from shipyard.workers.stages.run import run_work

WORK = {"build": build_work, "release": release_work, "run": run_work}


@pytest.fixture
def context(tmp_path: Path) -> Iterator[WorkerContext]:
    """A worker context on a migrated SQLite file of this test's own."""
    settings = Settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    migrate.upgrade(settings.sqlalchemy_url)
    yield WorkerContext.create(settings, Celery("shipyard-tests"))
    get_engine(settings.sqlalchemy_url).dispose()


@pytest.fixture(autouse=True)
def published(monkeypatch: pytest.MonkeyPatch) -> list[Event]:
    """What the frame publishes, instead of sending it to a broker."""
    sent: list[Event] = []
    monkeypatch.setattr(frame, "publish", lambda _celery, event: sent.append(event))
    return sent


def _pipeline(context: WorkerContext, repo: Path, environment_name: str) -> Pipeline:
    """A queued deploy pipeline of the noop app `web` (made on first use) at `repo`'s main."""
    with session_scope(context.db_url) as session:
        app = session.exec(select(App).where(App.name == "web")).first()
        if app is None:
            app = apps.create_app(
                session=session, data=AppCreate(name="web", repo=str(repo), builder="noop")
            )
        environment = apps.create_environment(
            session=session, app=app, data=EnvironmentCreate(name=environment_name, runner="noop")
        )
        return pipelines.create_pipeline(
            session=session,
            app=app,
            environment=environment,
            kind=PipelineKind.DEPLOY,
            trigger="api",
            ref="main",
        )


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _figures() -> dict[str, float]:
    figures = {
        f"{stage}/{result}": _value(
            "shipyard_stage_duration_seconds_count", stage=stage, result=result
        )
        for stage in WORK
        for result in ("succeeded", "failed")
    }
    for result in ("succeeded", "failed"):
        figures[f"pipeline/{result}"] = _value(
            "shipyard_pipelines_finished_total", result=result, cause="deploy", trigger="api"
        )
    for result in ("hit", "miss"):
        figures[f"cache/{result}"] = _value("shipyard_build_cache_lookups_total", result=result)
    return figures


def _delta(before: dict[str, float]) -> dict[str, float]:
    after = _figures()
    return {key: after[key] - before[key] for key in after if after[key] != before[key]}


def test_a_pipeline_counts_each_stage_once_and_itself_once_finished(
    context: WorkerContext, repo: Path
) -> None:
    before = _figures()

    for environment in ("staging", "production"):  # the same commit twice: a cache hit
        pipeline = _pipeline(context, repo, environment)
        for stage, work in WORK.items():
            frame.execute(context, pipeline.id, stage, f"{stage}@test", work)

    assert _delta(before) == {
        "build/succeeded": 2,
        "release/succeeded": 2,
        "run/succeeded": 2,
        "pipeline/succeeded": 2,
        "cache/miss": 1,
        "cache/hit": 1,
    }


def test_a_failed_stage_counts_as_failed_and_so_does_its_pipeline(
    context: WorkerContext, repo: Path
) -> None:
    pipeline = _pipeline(context, repo, "staging")
    before = _figures()

    def failing(_context: WorkerContext, _pipeline: Pipeline) -> frame.StageResult:
        raise StageFailed("the build command exited with status 2")

    frame.execute(context, pipeline.id, "build", "build@test", failing)
    # A duplicate message for the failed stage counts nothing more.
    frame.execute(context, pipeline.id, "build", "build@test", failing)

    assert _delta(before) == {"build/failed": 1, "pipeline/failed": 1}
    seconds = _value("shipyard_stage_duration_seconds_sum", stage="build", result="failed")
    assert seconds > 0


def test_a_stage_given_up_on_counts_its_pipeline_as_failed(
    context: WorkerContext, repo: Path
) -> None:
    pipeline = _pipeline(context, repo, "staging")
    with session_scope(context.db_url) as session:
        run = session.exec(
            select(StageRun).where(StageRun.pipeline_id == pipeline.id, StageRun.name == "build")
        ).one()
        # Every worker that took it died under it, silently (no heartbeat left).
        run.status, run.attempt, run.heartbeat_at = "running", constants.MAX_STAGE_ATTEMPTS, None
        session.add(run)
    before = _figures()

    outcome = frame.execute(context, pipeline.id, "build", "build@test", build_work)

    assert outcome == ClaimOutcome.GAVE_UP
    assert _delta(before) == {"pipeline/failed": 1}
