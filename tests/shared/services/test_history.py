"""Release diffs: what changed, never a secret value, not even one that used to be plain; the
release live at an instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql
from sqlmodel import Session

from shipyard.shared.crypto import SecretBox
from shipyard.shared.db import StatementCounter
from shipyard.shared.exceptions import NotFound
from shipyard.shared.models import (
    App,
    ConfigVersion,
    Deployment,
    DeploymentStatus,
    Environment,
    Pipeline,
    Release,
)
from shipyard.shared.schemas import ConfigPatch, HistoryPublic
from shipyard.shared.services import config, history
from shipyard.shared.services.deployments import deployment_view
from shipyard.shared.services.releases import release_view
from tests.shared.factories import make_artifact, make_release


def test_a_key_made_secret_shows_neither_its_old_nor_its_new_value(
    session: Session, box: SecretBox, app: App, staging: Environment
) -> None:
    artifact = make_artifact(session, app)
    config.patch_config(
        session=session,
        environment=staging,
        patch=ConfigPatch(vars={"API_KEY": "hunter2-plain", "MODE": "a"}),
        box=box,
    )
    session.commit()
    make_release(session, app, staging, artifact)
    config.patch_config(
        session=session,
        environment=staging,
        patch=ConfigPatch(vars={"API_KEY": "hunter3", "MODE": "b"}, secrets=["API_KEY"]),
        box=box,
    )
    session.commit()
    make_release(session, app, staging, artifact)

    diff = history.diff_releases(
        session=session, environment=staging, version=2, against=1, box=box
    )

    changes = {c.key: c for c in diff.config}
    assert diff.artifact_changed is False
    assert (changes["API_KEY"].secret, changes["API_KEY"].from_, changes["API_KEY"].to) == (
        True,
        "<redacted>",
        "<redacted>",
    )
    assert (changes["MODE"].from_, changes["MODE"].to) == ("a", "b")
    assert "hunter" not in diff.model_dump_json()


def _deployed(
    session: Session,
    app: App,
    environment: Environment,
    label: str,
    started: datetime,
    ended: datetime | None = None,
) -> tuple[Release, Deployment]:
    """A release of artifact `label`, deployed by its own pipeline, live from `started` (until
    `ended`)."""
    release = make_release(session, app, environment, make_artifact(session, app, label))
    assert release.pipeline_id is not None
    deployment = Deployment(
        environment_id=environment.id,
        release_id=release.id,
        pipeline_id=release.pipeline_id,
        status=DeploymentStatus.LIVE if ended is None else DeploymentStatus.SUPERSEDED,
        started_at=started,
        ended_at=ended,
        processes=[],
        rollout={"not": "a record"},  # shown as None, as every view of a deployment shows it
    )
    session.add(deployment)
    session.commit()
    return release, deployment


def _as_entities_show_it(
    session: Session, at: datetime, release: Release, deployment: Deployment
) -> HistoryPublic:
    """The view that loading the rows as entities made (what the routes answered before)."""
    config_version = session.get(ConfigVersion, release.config_version_id)
    pipeline = session.get(Pipeline, deployment.pipeline_id)
    assert config_version is not None and pipeline is not None
    return HistoryPublic(
        at=at,
        release=release_view(release, config_version.version),
        deployment=deployment_view(
            deployment, release.version, pipeline.trigger, pipeline.requested_by
        ),
    )


def test_the_release_live_at_an_instant_is_read_in_one_statement(
    session: Session, app: App, staging: Environment, production: Environment
) -> None:
    start = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
    switch = start + timedelta(hours=1)
    v1, first = _deployed(session, app, staging, "one", start, ended=switch)
    v2, second = _deployed(session, app, staging, "two", switch)
    _deployed(session, app, production, "three", start)  # another environment's: not seen
    engine = session.get_bind()
    assert isinstance(engine, Engine)

    def by_names(at: datetime) -> HistoryPublic:
        connection = session.connection()
        with StatementCounter(engine) as counter:
            found = history.live_at_by_names(
                connection=connection, app="web", environment="staging", at=at
            )
        assert len(counter.statements) == 1  # the deployment with its release
        return found

    during_v1 = start + timedelta(minutes=59)
    assert by_names(during_v1) == _as_entities_show_it(session, during_v1, v1, first)
    assert by_names(start) == _as_entities_show_it(session, start, v1, first)
    later = start + timedelta(days=1)
    assert by_names(later) == _as_entities_show_it(session, later, v2, second)
    assert history.live_at(session=session, environment=staging, at=later) == by_names(later)


def test_nothing_live_and_unknown_names_say_which(
    session: Session, app: App, staging: Environment
) -> None:
    start = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
    _deployed(session, app, staging, "one", start)
    before = start - timedelta(seconds=1)
    cases = [
        ("web", "staging", "nothing was live in staging at"),
        ("web", "nowhere", "environment 'nowhere' of app 'web' not found"),
        ("nobody", "staging", "app 'nobody' not found"),
    ]
    for app_name, environment, message in cases:
        with pytest.raises(NotFound, match=message):
            history.live_at_by_names(
                connection=session.connection(), app=app_name, environment=environment, at=before
            )
    with pytest.raises(NotFound, match="nothing was live in staging at"):
        history.live_at(session=session, environment=staging, at=before)


def test_the_history_lookup_has_its_limit_in_its_text_on_postgresql() -> None:
    # A LIMIT sent as a parameter kept PostgreSQL planning the lookup at every execution.
    compiled = str(history._LIVE_AT_BY_NAMES.compile(dialect=postgresql.dialect()))
    assert "LIMIT 1" in compiled
    assert "LIMIT %(" not in compiled
