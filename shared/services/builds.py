"""Builds and the artifacts they produce."""

from __future__ import annotations

import uuid

from sqlalchemy import Table, bindparam, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from shipyard.shared.db import core_connection, fixed_limit, sync_loaded
from shipyard.shared.models import App, Artifact, Build, Pipeline, utcnow
from shipyard.shared.schemas import ArtifactPublic, BuildLogPublic


def start_build(*, session: Session, pipeline: Pipeline, app: App) -> Build:
    """The build record of `pipeline`, created on its first attempt."""
    build = session.exec(select(Build).where(Build.pipeline_id == pipeline.id)).first()
    if build is None:
        build = Build(
            pipeline_id=pipeline.id,
            app_id=app.id,
            ref=pipeline.ref or "HEAD",
            builder=app.builder,
            path=app.path,
        )
        session.add(build)
        session.flush()
    return build


def cached_artifact(
    *, session: Session, app_id: uuid.UUID, commit_sha: str, builder: str, path: str = ""
) -> Artifact | None:
    """The build cache: the artifact this app's latest build of this commit produced, if it is
    still stored.

    Looked up through the app's own builds: artifacts are named by their content, so two apps
    whose builds come out byte for byte the same share one artifact row. Two lookups with fixed
    access paths (the builds by `ix_build_cache`, then artifacts by their key), so that its cost
    does not grow with the app's history whatever plan a join would get.
    """
    produced = session.exec(
        select(Build.artifact_id)
        .where(
            Build.app_id == app_id,
            Build.commit_sha == commit_sha,
            Build.builder == builder,
            Build.path == path,
            col(Build.artifact_id).is_not(None),
        )
        .order_by(col(Build.created_at).desc())
        .limit(fixed_limit(_CACHE_CANDIDATES))
    ).all()
    for artifact_id in dict.fromkeys(produced):  # newest first, each once
        artifact = session.get(Artifact, artifact_id)
        if artifact is not None and artifact.deleted_at is None:
            return artifact
    return None


# Builds of one commit looked at: a cache hit records the artifact it reused, so the newest
# builds of a commit name its current artifact unless it was garbage-collected.
_CACHE_CANDIDATES = 10


def find_artifact(
    *, session: Session, app_id: uuid.UUID, commit_sha: str, builder: str, path: str = ""
) -> Artifact | None:
    """The current artifact row of (app, commit, builder, folder): the one its unique index
    allows."""
    return session.exec(
        select(Artifact).where(
            Artifact.app_id == app_id,
            Artifact.commit_sha == commit_sha,
            Artifact.builder == builder,
            Artifact.path == path,
            col(Artifact.deleted_at).is_(None),
        )
    ).first()


def record_artifact(
    *,
    session: Session,
    app_id: uuid.UUID,
    digest: str,
    commit_sha: str,
    builder: str,
    size: int,
    location: str,
    procfile: dict[str, str],
    path: str = "",
) -> Artifact:
    """Store the artifact row and return the commit's current artifact.

    An artifact with the same digest is the same artifact (a garbage-collected one comes back).
    If another worker recorded a different artifact for this commit at the same time (a build
    that is not reproducible, such as a Docker image), the first one recorded is the commit's
    artifact from then on.
    """
    artifact = session.get(Artifact, digest)
    if artifact is not None:
        artifact.deleted_at = None
        session.add(artifact)
        session.flush()
        return artifact
    try:
        with session.begin_nested():
            artifact = Artifact(
                id=digest,
                app_id=app_id,
                commit_sha=commit_sha,
                builder=builder,
                path=path,
                size=size,
                location=location,
                procfile=procfile,
            )
            session.add(artifact)
    except IntegrityError:
        existing = session.get(Artifact, digest) or find_artifact(
            session=session, app_id=app_id, commit_sha=commit_sha, builder=builder, path=path
        )
        if existing is None:
            raise
        return existing
    return artifact


def finish_build(
    *,
    session: Session,
    build_id: uuid.UUID,
    commit_sha: str | None,
    artifact_id: str | None,
    cache_hit: bool,
    log: str,
) -> None:
    """Record what the build resolved, produced and printed (one UPDATE, nothing read)."""
    values = {
        "commit_sha": commit_sha,
        "artifact_id": artifact_id,
        "cache_hit": cache_hit,
        "log": log,
        "finished_at": utcnow(),
    }
    core_connection(session).execute(
        _FINISH, {"p_build": build_id, **{f"p_{name}": value for name, value in values.items()}}
    )
    sync_loaded(session, Build, build_id, values)


_BUILDS: Table = Build.__table__  # type: ignore[attr-defined]
# Built once: every build stage finishes its row with it.
_FINISH = (
    update(_BUILDS)
    .where(_BUILDS.c.id == bindparam("p_build"))
    .values(
        commit_sha=bindparam("p_commit_sha"),
        artifact_id=bindparam("p_artifact_id"),
        cache_hit=bindparam("p_cache_hit"),
        log=bindparam("p_log"),
        finished_at=bindparam("p_finished_at"),
    )
)


def build_log(*, session: Session, pipeline_id: uuid.UUID) -> BuildLogPublic | None:
    """The build log of a pipeline, if it had a build stage that started."""
    build = session.exec(select(Build).where(Build.pipeline_id == pipeline_id)).first()
    if build is None:
        return None
    return BuildLogPublic(
        pipeline_id=pipeline_id, commit=build.commit_sha, cache_hit=build.cache_hit, log=build.log
    )


def list_artifacts(*, session: Session, app: App) -> list[ArtifactPublic]:
    """The artifacts the app's builds produced, newest first, with the commit each came from."""
    rows = session.exec(
        select(Build, Artifact)
        .join(Artifact, col(Artifact.id) == col(Build.artifact_id))
        .where(Build.app_id == app.id)
        .order_by(col(Build.created_at).desc())
    )
    listed: dict[str, ArtifactPublic] = {}
    for build, artifact in rows:
        listed.setdefault(
            artifact.id,
            ArtifactPublic(
                id=artifact.id,
                commit=build.commit_sha or artifact.commit_sha,
                builder=artifact.builder,
                size=artifact.size,
                location=artifact.location,
                created_at=artifact.created_at,
            ),
        )
    return list(listed.values())
