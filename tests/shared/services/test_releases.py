"""Releases: numbered v1, v2, v3 per environment, one per pipeline."""

from __future__ import annotations

from sqlmodel import Session

from shipyard.shared.crypto import SecretBox
from shipyard.shared.models import App, Environment, Release, ReleaseStatus
from shipyard.shared.schemas import ConfigPatch
from shipyard.shared.services.config import patch_config
from shipyard.shared.services.releases import create_release, list_releases, release_public
from tests.shared.factories import make_artifact, make_pipeline


def _release(session: Session, app: App, environment: Environment, artifact_id: str) -> Release:
    pipeline = make_pipeline(session, app, environment)
    release = create_release(
        session=session, pipeline=pipeline, artifact_id=artifact_id, cause="deploy"
    )
    session.commit()
    return release


def test_releases_are_numbered_1_2_3_per_environment(
    session: Session, app: App, staging: Environment
) -> None:
    artifact = make_artifact(session, app)

    versions = [_release(session, app, staging, artifact.id).version for _ in range(3)]

    assert versions == [1, 2, 3]


def test_each_environment_numbers_its_own_releases(
    session: Session, app: App, staging: Environment, production: Environment
) -> None:
    artifact = make_artifact(session, app)

    staging_versions = [_release(session, app, staging, artifact.id).version for _ in range(2)]
    production_first = _release(session, app, production, artifact.id)
    staging_third = _release(session, app, staging, artifact.id)

    assert staging_versions == [1, 2]
    assert production_first.version == 1
    assert staging_third.version == 3


def test_create_release_is_idempotent_per_pipeline(
    session: Session, app: App, staging: Environment
) -> None:
    artifact = make_artifact(session, app)
    pipeline = make_pipeline(session, app, staging)

    first = create_release(
        session=session, pipeline=pipeline, artifact_id=artifact.id, cause="deploy"
    )
    session.commit()
    again = create_release(
        session=session, pipeline=pipeline, artifact_id=artifact.id, cause="deploy"
    )
    session.commit()

    assert again.id == first.id
    assert [r.version for r in list_releases(session=session, environment=staging)] == [1]


def test_a_release_pairs_the_artifact_with_the_current_config(
    session: Session, app: App, staging: Environment, box: SecretBox
) -> None:
    artifact = make_artifact(session, app)
    patch_config(
        session=session, environment=staging, patch=ConfigPatch(vars={"DEBUG": "1"}), box=box
    )
    session.commit()

    release = _release(session, app, staging, artifact.id)

    public = release_public(session=session, release=release)
    assert (public.artifact_id, public.config_version) == (artifact.id, 2)
    assert (public.status, public.cause) == (ReleaseStatus.PENDING, "deploy")


def test_releases_are_listed_newest_first(session: Session, app: App, staging: Environment) -> None:
    first, second = make_artifact(session, app, "one"), make_artifact(session, app, "two")
    _release(session, app, staging, first.id)
    _release(session, app, staging, second.id)

    listed = list_releases(session=session, environment=staging)

    assert [(r.version, r.artifact_id) for r in listed] == [(2, second.id), (1, first.id)]
