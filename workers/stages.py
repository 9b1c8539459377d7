"""The three stages: claim the stage, do its work with a driver, record the result, publish next."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import structlog
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel

from shared.broker import publish
from shared.db import session_scope
from shared.events import ArtifactBuilt, ReleaseCreated, StageEvent
from shared.exceptions import ShipyardError, StageFailed
from shared.logging import forget_secrets, register_secrets
from shared.manifest import read_procfile
from shared.models import (
    App,
    Build,
    ConfigVersion,
    Deployment,
    DeploymentStatus,
    Environment,
    Pipeline,
    PipelineKind,
    Release,
)
from shared.services import builds, deployments, pipelines, releases
from shared.services.config import decrypt_config
from workers import source
from workers.build_log import BuildLog
from workers.builders import get_builder
from workers.builders.base import BuildRequest
from workers.context import WorkerContext
from workers.runners import get_runner
from workers.runners.base import ProcessRecord, ReleaseSpec
from workers.runners.switch import health_gated_start, switch

log = structlog.get_logger(__name__)
_Row = TypeVar("_Row", bound=SQLModel)


@dataclass(frozen=True)
class StageResult:
    """What a stage produced: its result id, and the event for the next stage (if any)."""

    result_id: str
    next_event: StageEvent | None = None
    cache_hit: bool = False
    artifact_id: str | None = None
    release_id: uuid.UUID | None = None
    deployment_id: uuid.UUID | None = None


StageWork = Callable[[WorkerContext, Pipeline], StageResult]


def execute(
    context: WorkerContext, pipeline_id: uuid.UUID, stage: str, hostname: str, work: StageWork
) -> None:
    """Run one stage once in effect: a duplicate message for a finished stage does nothing."""
    structlog.contextvars.bind_contextvars(pipeline_id=str(pipeline_id), stage=stage)
    try:
        with session_scope(context.db_url) as session:
            claimed = pipelines.claim_stage(
                session=session, pipeline_id=pipeline_id, stage=stage, hostname=hostname
            )
            pipeline = pipelines.get_pipeline(session=session, pipeline_id=pipeline_id)
        if claimed is None:
            log.info("stage.duplicate_ignored")
            return
        log.info("stage.started", attempt=claimed.attempt)
        try:
            result = work(context, pipeline)
        except StageFailed as exc:
            _record_failure(context, pipeline_id, stage, exc.message)
            return
        except OperationalError:
            raise  # the database is away: the task retries, the stage stays claimed
        except Exception as exc:  # a bug or an unexpected driver error: fail, never hang
            log.exception("stage.crashed")
            _record_failure(context, pipeline_id, stage, f"internal error ({type(exc).__name__})")
            return
        with session_scope(context.db_url) as session:
            pipeline = pipelines.get_pipeline(session=session, pipeline_id=pipeline_id)
            pipeline.artifact_id = result.artifact_id or pipeline.artifact_id
            pipeline.release_id = result.release_id or pipeline.release_id
            pipeline.deployment_id = result.deployment_id or pipeline.deployment_id
            pipelines.complete_stage(
                session=session,
                pipeline=pipeline,
                stage=stage,
                result_id=result.result_id,
                cache_hit=result.cache_hit,
            )
        log.info("stage.succeeded", result_id=result.result_id, cache_hit=result.cache_hit)
        # Published only after the stage's rows are committed (see docs/reliability.md).
        if result.next_event is not None:
            publish(context.celery, result.next_event)
    finally:
        forget_secrets()
        structlog.contextvars.clear_contextvars()


def _record_failure(context: WorkerContext, pipeline_id: uuid.UUID, stage: str, error: str) -> None:
    with session_scope(context.db_url) as session:
        pipeline = pipelines.get_pipeline(session=session, pipeline_id=pipeline_id)
        pipelines.fail_stage(session=session, pipeline=pipeline, stage=stage, error=error)
    log.warning("stage.failed", error=error)


# --- build -------------------------------------------------------------------------------------


def build_work(context: WorkerContext, pipeline: Pipeline) -> StageResult:
    """Resolve the ref, reuse a cached artifact or build and store a new one."""
    settings = context.settings
    with session_scope(context.db_url) as session:
        app = _get(session, App, pipeline.app_id)
        build = builds.start_build(session=session, pipeline=pipeline, app=app)
    build_log = BuildLog(settings.build_log_limit)
    commit_sha: str | None = None
    try:
        commit = source.resolve(app.repo, build.ref, settings.work_dir / "mirrors")
        commit_sha = commit.sha
        build_log.write(f"-----> Building {app.name} at {commit.sha} ({build.ref})")
        with session_scope(context.db_url) as session:
            cached = builds.find_artifact(
                session=session, app_id=app.id, commit_sha=commit.sha, builder=app.builder
            )
        if cached is not None:
            build_log.write(f"-----> Cache hit: {cached.id} was built from this commit")
            artifact_id, cache_hit = cached.id, True
        else:
            artifact_id, cache_hit = _build_new(context, app, commit, build_log), False
    except StageFailed as exc:
        build_log.write(f"!!!!!> {exc.message}")
        _save_build(context, build.id, commit_sha, None, False, build_log)
        raise
    _save_build(context, build.id, commit_sha, artifact_id, cache_hit, build_log)
    structlog.contextvars.bind_contextvars(artifact_id=artifact_id)
    return StageResult(
        result_id=artifact_id,
        artifact_id=artifact_id,
        cache_hit=cache_hit,
        next_event=ArtifactBuilt(pipeline_id=pipeline.id, artifact_id=artifact_id),
    )


def _build_new(context: WorkerContext, app: App, commit: source.Commit, build_log: BuildLog) -> str:
    builder = get_builder(app.builder, context)
    context.settings.work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=context.settings.work_dir, prefix="build-") as scratch:
        source_dir = Path(scratch) / "src"
        source.export(commit, app.path, source_dir)
        read_procfile(source_dir)  # refuse early what the run stage could never start
        request = BuildRequest(
            app=app.name,
            commit_sha=commit.sha,
            commit_timestamp=commit.timestamp,
            source_dir=source_dir,
            work_dir=Path(scratch),
            timeout=context.settings.build_timeout,
        )
        built = builder.build(request, build_log)
    with session_scope(context.db_url) as session:
        builds.record_artifact(
            session=session,
            app_id=app.id,
            digest=built.digest,
            commit_sha=commit.sha,
            builder=builder.name,
            size=built.size,
            location=built.location,
        )
    return built.digest


def _save_build(
    context: WorkerContext,
    build_id: uuid.UUID,
    commit_sha: str | None,
    artifact_id: str | None,
    cache_hit: bool,
    build_log: BuildLog,
) -> None:
    with session_scope(context.db_url) as session:
        build = _get(session, Build, build_id)
        builds.finish_build(
            session=session,
            build=build,
            commit_sha=commit_sha,
            artifact_id=artifact_id,
            cache_hit=cache_hit,
            log=build_log.text(),
        )


# --- release -----------------------------------------------------------------------------------


def release_work(context: WorkerContext, pipeline: Pipeline) -> StageResult:
    """Pair the artifact with the environment's current config as the next version."""
    if pipeline.artifact_id is None:
        raise StageFailed("the pipeline has no artifact to release")
    cause = "config" if pipeline.kind == PipelineKind.CONFIG else "deploy"
    with session_scope(context.db_url) as session:
        release = releases.create_release(
            session=session, pipeline=pipeline, artifact_id=pipeline.artifact_id, cause=cause
        )
    structlog.contextvars.bind_contextvars(release_id=str(release.id))
    log.info("release.created", version=release.version)
    return StageResult(
        result_id=str(release.id),
        release_id=release.id,
        next_event=ReleaseCreated(pipeline_id=pipeline.id, release_id=release.id),
    )


# --- run ---------------------------------------------------------------------------------------


def release_spec(session: Session, context: WorkerContext, deployment: Deployment) -> ReleaseSpec:
    """The runner's view of a deployment's release, with its config decrypted."""
    release = _get(session, Release, deployment.release_id)
    environment = _get(session, Environment, release.environment_id)
    app = _get(session, App, environment.app_id)
    config = _get(session, ConfigVersion, release.config_version_id)
    env, secret_values = decrypt_config(config, context.box)
    register_secrets(secret_values)
    structlog.contextvars.bind_contextvars(release_id=str(release.id))
    return ReleaseSpec(
        app=app.name,
        environment=environment.name,
        release_id=str(release.id),
        release_version=release.version,
        deployment_id=str(deployment.id),
        artifact_id=release.artifact_id,
        health_path=environment.health_path,
        health_timeout=environment.health_timeout,
        env=env,
        memory_limit=environment.memory_limit,
        cpu_limit=environment.cpu_limit,
    )


def run_work(context: WorkerContext, pipeline: Pipeline) -> StageResult:
    """Start the release healthy, then switch the environment to it."""
    if pipeline.release_id is None:
        raise StageFailed("the pipeline has no release to run")
    with session_scope(context.db_url) as session:
        release = releases.get_release(session=session, release_id=pipeline.release_id)
        deployment = deployments.begin_deployment(
            session=session, pipeline_id=pipeline.id, release=release, cause=release.cause
        )
        if deployment is None:
            raise StageFailed("another worker is running this stage")
        environment = _get(session, Environment, release.environment_id)
        spec = release_spec(session, context, deployment)
    result = StageResult(result_id=str(deployment.id), deployment_id=deployment.id)
    if deployment.status == DeploymentStatus.LIVE:
        return result  # a redelivered message after the switch was recorded
    runner = get_runner(environment.runner, context)

    def go_live(processes: list[ProcessRecord]) -> list[ProcessRecord] | None:
        with session_scope(context.db_url) as session:
            current = _get(session, Deployment, deployment.id)
            previous = deployments.go_live(session=session, deployment=current, processes=processes)
            return list(previous.processes) if previous is not None else None

    try:
        switch(runner, spec, go_live)
    except ShipyardError as exc:
        with session_scope(context.db_url) as session:
            current = _get(session, Deployment, deployment.id)
            deployments.fail_deployment(session=session, deployment=current, error=exc.message)
        raise StageFailed(exc.message) from exc
    log.info("run.live", deployment_id=str(deployment.id))
    return result


def restore(context: WorkerContext, deployment_id: uuid.UUID) -> None:
    """Start a live deployment's processes again after `shipyard up` restarts: SQL is the truth."""
    structlog.contextvars.bind_contextvars(deployment_id=str(deployment_id))
    try:
        with session_scope(context.db_url) as session:
            deployment = _get(session, Deployment, deployment_id)
            if deployment.status != DeploymentStatus.LIVE:
                return
            environment = _get(session, Environment, deployment.environment_id)
            spec = release_spec(session, context, deployment)
        runner = get_runner(environment.runner, context)
        if deployment.processes and all(runner.is_running(p) for p in deployment.processes):
            return
        runner.stop(deployment.processes)
        try:
            processes = health_gated_start(runner, spec)
        except StageFailed as exc:
            log.error("restore.unhealthy", error=exc.message)
            processes = []
        with session_scope(context.db_url) as session:
            current = _get(session, Deployment, deployment_id)
            deployments.set_processes(session=session, deployment=current, processes=processes)
        log.info("restore.done", processes=len(processes))
    finally:
        forget_secrets()
        structlog.contextvars.clear_contextvars()


def _get(session: Session, model: type[_Row], key: object) -> _Row:
    row = session.get(model, key)
    if row is None:
        raise StageFailed(f"{model.__name__} {key} no longer exists")
    return row
