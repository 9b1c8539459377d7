"""The build cache: an app's latest build of a commit names the artifact to reuse."""

from __future__ import annotations

import uuid

from sqlmodel import Session

from shipyard.shared.db import session_scope
from shipyard.shared.models import App, Artifact, Environment, utcnow
from shipyard.shared.schemas import AppCreate, AppUpdate
from shipyard.shared.services import apps, builds
from tests.shared.factories import make_artifact, make_pipeline

SHA = "a" * 40


def _built(
    session: Session, app: App, environment: Environment, artifact: Artifact | None, sha: str = SHA
) -> None:
    """A finished build of `sha` by `app` that produced `artifact` (None: it failed)."""
    pipeline = make_pipeline(session, app, environment)
    build = builds.start_build(session=session, pipeline=pipeline, app=app)
    builds.finish_build(
        session=session,
        build_id=build.id,
        commit_sha=sha,
        artifact_id=artifact.id if artifact else None,
        cache_hit=False,
        log="",
    )
    session.commit()


def _cached(session: Session, app: App, sha: str = SHA) -> Artifact | None:
    return builds.cached_artifact(session=session, app_id=app.id, commit_sha=sha, builder="local")


def test_a_commit_never_built_is_a_miss(session: Session, app: App, staging: Environment) -> None:
    _built(session, app, staging, make_artifact(session, app, "other"), sha="b" * 40)

    assert _cached(session, app) is None


def test_a_commit_built_before_is_a_hit_and_a_failed_build_is_not(
    session: Session, app: App, staging: Environment
) -> None:
    _built(session, app, staging, None)
    assert _cached(session, app) is None

    artifact = make_artifact(session, app, "one")
    _built(session, app, staging, artifact)

    assert _cached(session, app) == artifact


def test_a_garbage_collected_artifact_is_no_hit_but_an_older_current_one_is(
    session: Session, app: App, staging: Environment
) -> None:
    # A builder that is not reproducible (Docker) can leave two artifacts for one commit.
    older = make_artifact(session, app, "older")
    newer = make_artifact(session, app, "newer")
    _built(session, app, staging, older)
    _built(session, app, staging, newer)
    assert _cached(session, app) == newer

    newer.deleted_at = utcnow()
    session.add(newer)
    session.commit()
    assert _cached(session, app) == older

    older.deleted_at = utcnow()
    session.add(older)
    session.commit()
    assert _cached(session, app) is None


def test_another_apps_build_of_the_same_commit_is_no_hit(
    session: Session, app: App, staging: Environment
) -> None:
    other = apps.create_app(session=session, data=AppCreate(name="api", repo="/srv/web"))
    session.commit()
    _built(session, app, staging, make_artifact(session, app, "one"))

    assert _cached(session, other) is None


def _record(db_url: str, app_id: uuid.UUID, digest: str) -> str:
    """Record `digest` as the build of SHA, in a transaction of its own as the build stage does."""
    with session_scope(db_url) as session:
        return builds.record_artifact(
            session=session,
            app_id=app_id,
            digest=digest,
            commit_sha=SHA,
            builder="local",
            size=1,
            location="file:///artifacts",
            procfile={"web": "serve"},
        ).id


def test_the_first_artifact_recorded_for_a_commit_stays_its_artifact(
    db_url: str, session: Session, app: App
) -> None:
    app_id = app.id
    session.commit()  # nothing of this session's holds the database from here on
    first = _record(db_url, app_id, "sha256:" + "1" * 64)

    # Another worker's build of the same commit that came out different (a Docker image): the
    # conflict rolls its transaction back and answers with the artifact recorded first.
    assert _record(db_url, app_id, "sha256:" + "2" * 64) == first
    assert _record(db_url, app_id, first) == first  # the same artifact again: the same row
    with session_scope(db_url) as reader:
        assert reader.get(Artifact, "sha256:" + "2" * 64) is None


def test_a_commit_built_from_another_folder_of_the_app_is_built_anew(
    db_url: str, session: Session, app: App, staging: Environment
) -> None:
    artifact = make_artifact(session, app, "one")
    _built(session, app, staging, artifact)
    assert _cached(session, app) == artifact

    apps.update_app(session=session, app=app, data=AppUpdate(path="services/web"))
    session.commit()
    moved = builds.cached_artifact(
        session=session, app_id=app.id, commit_sha=SHA, builder="local", path="services/web"
    )
    app_id = app.id
    session.commit()
    # Its own artifact for the same commit, beside the first one (both current).
    with session_scope(db_url) as other:
        recorded = builds.record_artifact(
            session=other,
            app_id=app_id,
            digest="sha256:" + "2" * 64,
            commit_sha=SHA,
            builder="local",
            size=1,
            location="file:///artifacts",
            procfile={"web": "serve"},
            path="services/web",
        )

    assert moved is None
    assert recorded.id == "sha256:" + "2" * 64 and recorded.path == "services/web"
