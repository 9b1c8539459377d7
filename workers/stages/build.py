"""Build stage: resolve the ref to a commit, reuse its artifact or build and store a new one."""

from __future__ import annotations

import tempfile
import uuid
from functools import partial
from pathlib import Path

import structlog
from sqlmodel import Session

from shipyard.shared import build_stream, constants
from shipyard.shared.db import session_scope
from shipyard.shared.exceptions import StageFailed
from shipyard.shared.manifest import read_procfile
from shipyard.shared.models import App, Artifact, Pipeline
from shipyard.shared.services import builds
from shipyard.workers import source
from shipyard.workers.build_log import BuildLog
from shipyard.workers.builders import get_builder
from shipyard.workers.builders.base import BuildRequest
from shipyard.workers.context import WorkerContext
from shipyard.workers.stages.frame import FailureWithRecord, StageResult, get_row

log = structlog.get_logger(__name__)


def build_work(context: WorkerContext, pipeline: Pipeline) -> StageResult:
    """Resolve the ref, reuse a cached artifact or build and store a new one."""
    settings = context.settings
    with session_scope(context.db_url) as session:
        app = get_row(session, App, pipeline.app_id)
        if app.destroyed_at is not None:  # a pipeline that raced `apps destroy`
            raise StageFailed("its app was destroyed (shipyard apps destroy): nothing is built")
        build = builds.start_build(session=session, pipeline=pipeline, app=app)
    live_view = build_stream.stream_key(settings.broker_namespace, pipeline.id)
    build_log = BuildLog(
        settings.build_log_limit, sink=partial(build_stream.append, context.redis, live_view)
    )
    commit_sha: str | None = None
    try:
        commit = source.resolve(app.repo, build.ref, settings.work_dir / "mirrors")
        commit_sha = commit.sha
        build_log.write(f"-----> Building {app.name} at {commit.sha} ({build.ref})")
        with session_scope(context.db_url) as session:
            cached = builds.cached_artifact(
                session=session,
                app_id=app.id,
                commit_sha=commit.sha,
                builder=app.builder,
                path=app.path,
            )
        if cached is not None and not get_builder(app.builder, context).has(app.name, cached.id):
            # Lost from the store (a registry replaced or cleaned by hand, a store switched
            # from file:// to oci://): built again rather than failing every run after it.
            build_log.write(f"-----> {cached.id} is no longer in the artifact store: rebuilding")
            cached = None
        if cached is not None:
            build_log.write(f"-----> Cache hit: {cached.id} was built from this commit")
            artifact_id, cache_hit = cached.id, True
        else:
            artifact_id, cache_hit = _build_new(context, app, commit, build_log), False
    except StageFailed as exc:
        build_log.write(f"!!!!!> {exc.message}")
        # Recorded with the stage's failure, fenced: a taken-over attempt writes nothing.
        finish = partial(_finish, build.id, commit_sha, None, False, build_log)
        raise FailureWithRecord(exc, finish) from exc
    structlog.contextvars.bind_contextvars(artifact_id=artifact_id)
    return StageResult(
        result_id=artifact_id,
        artifact_id=artifact_id,
        cache_hit=cache_hit,
        # The build row is finished with the stage's result: one transaction, fenced.
        record=partial(_finish, build.id, commit_sha, artifact_id, cache_hit, build_log),
    )


def _build_new(context: WorkerContext, app: App, commit: source.Commit, build_log: BuildLog) -> str:
    builder = get_builder(app.builder, context)
    context.settings.work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=context.settings.work_dir, prefix="build-") as scratch:
        source_dir = Path(scratch) / "src"
        source.export(commit, app.path, source_dir)
        procfile = declared_processes(builder.name, source_dir)
        request = BuildRequest(
            app=app.name,
            commit_sha=commit.sha,
            commit_timestamp=commit.timestamp,
            source_dir=source_dir,
            work_dir=Path(scratch),
            timeout=context.settings.build_timeout,
            # The app's own: a build cannot leave a package for another app's build to install.
            cache_dir=context.settings.data_dir / "cache" / "builds" / app.name,
            layer_dir=context.settings.data_dir / "cache" / "layers" / app.name,
            path=app.path,
        )
        built = builder.build(request, build_log)
    with session_scope(context.db_url) as session:
        artifact = builds.record_artifact(
            session=session,
            app_id=app.id,
            digest=built.digest,
            commit_sha=commit.sha,
            builder=builder.name,
            size=built.size,
            location=built.location,
            procfile=procfile,
            path=app.path,
        )
    return artifact.id  # another worker's artifact if it recorded this commit first


def declared_processes(builder: str, source_dir: Path) -> dict[str, str]:
    """The Procfile, read now to refuse early what could never run. An image needs none: without
    one the Docker runner runs the image's own CMD as `web`."""
    if builder == "docker" and not (source_dir / constants.PROCFILE).exists():
        return {}
    return read_procfile(source_dir)


def _finish(
    build_id: uuid.UUID,
    commit_sha: str | None,
    artifact_id: str | None,
    cache_hit: bool,
    build_log: BuildLog,
    session: Session,
) -> None:
    builds.finish_build(
        session=session,
        build_id=build_id,
        commit_sha=commit_sha,
        artifact_id=artifact_id,
        cache_hit=cache_hit,
        log=build_log.text(),
    )


def remove_expired_artifacts(context: WorkerContext, artifact_ids: list[str]) -> list[str]:
    """Remove what garbage collection expired; an artifact rebuilt since then is left alone.
    Returns the ids whose removal failed (the store was unreachable): the caller retries them."""
    failed: list[str] = []
    for artifact_id in artifact_ids:
        with session_scope(context.db_url) as session:
            artifact = session.get(Artifact, artifact_id)
            app = session.get(App, artifact.app_id) if artifact is not None else None
        if artifact is None or app is None or artifact.deleted_at is None:
            continue
        try:
            get_builder(artifact.builder, context).remove(app.name, artifact.id)
        except StageFailed as exc:
            log.warning("artifact.remove_failed", artifact_id=artifact.id, error=exc.message)
            failed.append(artifact.id)
            continue
        log.info("artifact.removed", artifact_id=artifact.id)
    return failed
