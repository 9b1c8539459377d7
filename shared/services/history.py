"""What ran when: deployments over time, the release live at an instant, diffs of releases."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy
from sqlalchemy import Connection, Row, Table
from sqlmodel import Session, col, select

from shipyard.shared.constants import REDACTED
from shipyard.shared.crypto import SecretBox
from shipyard.shared.db import core_connection, fixed_limit
from shipyard.shared.exceptions import NotFound
from shipyard.shared.models import (
    App,
    Artifact,
    ConfigVersion,
    Deployment,
    Environment,
    Pipeline,
    Release,
)
from shipyard.shared.schemas import (
    ArtifactSide,
    ConfigChange,
    DeploymentPublic,
    HistoryPublic,
    ReleaseDiff,
    ReleasePublic,
)
from shipyard.shared.services import apps
from shipyard.shared.services.config import decrypt_config
from shipyard.shared.services.deployments import deployment_view
from shipyard.shared.services.releases import get_release_by_version

_DEPLOYMENTS: Table = Deployment.__table__  # type: ignore[attr-defined]
_RELEASES: Table = Release.__table__  # type: ignore[attr-defined]
_CONFIG_VERSIONS: Table = ConfigVersion.__table__  # type: ignore[attr-defined]
_PIPELINES: Table = Pipeline.__table__  # type: ignore[attr-defined]
_APPS: Table = App.__table__  # type: ignore[attr-defined]
_ENVIRONMENTS: Table = Environment.__table__  # type: ignore[attr-defined]

# What HistoryPublic shows of the deployment and of its release, read as columns in one
# statement: the deployment live at `at` is looked up in a derived table (`LIMIT 1`, so
# PostgreSQL plans it apart: ix_deployment_history walked backwards from `at`), then its release,
# config version and pipeline are joined to that one row by their keys. Loading the four rows as
# entities in one flat five-table join cost the request well over its SQL: PostgreSQL plans a
# statement anew at each run (custom plans: `started_at <= $1` could match any share of the
# rows), and it searched join orders for all five tables. Two statements (the deployment, then
# its release) cost a round trip and an execution more than the derived table does
# (docs/benchmarks.md, issue 28).
_DEPLOYMENT_FIELDS = [n for n in DeploymentPublic.model_fields if n in _DEPLOYMENTS.c]
_RELEASE_FIELDS = [n for n in ReleasePublic.model_fields if n in _RELEASES.c]
_RELEASE_PREFIX = "release__"  # not "release_": the deployment has a release_id
_LIVE_AT = (
    sqlalchemy.select(
        *(_DEPLOYMENTS.c[name] for name in _DEPLOYMENT_FIELDS), _DEPLOYMENTS.c.pipeline_id
    )
    .where(
        _DEPLOYMENTS.c.started_at.is_not(None),
        _DEPLOYMENTS.c.started_at <= sqlalchemy.bindparam("p_at"),
    )
    .order_by(_DEPLOYMENTS.c.started_at.desc())
    .limit(fixed_limit(1))
)


def _with_release(live: sqlalchemy.Select[Any]) -> sqlalchemy.Select[Any]:
    """The deployment `live` finds, with its release's columns (`release__…`), the release's
    config version and the pipeline's trigger and requester."""
    deployment = live.subquery("live")
    return sqlalchemy.select(
        *deployment.c,
        *(_RELEASES.c[name].label(_RELEASE_PREFIX + name) for name in _RELEASE_FIELDS),
        _CONFIG_VERSIONS.c.version.label(_RELEASE_PREFIX + "config_version"),
        _PIPELINES.c.trigger,
        _PIPELINES.c.requested_by,
    ).select_from(
        deployment.join(_RELEASES, _RELEASES.c.id == deployment.c.release_id)
        .join(_CONFIG_VERSIONS, _CONFIG_VERSIONS.c.id == _RELEASES.c.config_version_id)
        .outerjoin(_PIPELINES, _PIPELINES.c.id == deployment.c.pipeline_id)
    )


_LIVE_AT_BY_ID = _with_release(
    _LIVE_AT.where(_DEPLOYMENTS.c.environment_id == sqlalchemy.bindparam("p_environment"))
)
# The environment named in the request, as a subquery: PostgreSQL finds it once, then walks
# ix_deployment_history backwards from `at`, as it does with the id.
_LIVE_AT_BY_NAMES = _with_release(
    _LIVE_AT.where(
        _DEPLOYMENTS.c.environment_id
        == sqlalchemy.select(_ENVIRONMENTS.c.id)
        .join(_APPS, _APPS.c.id == _ENVIRONMENTS.c.app_id)
        .where(
            _APPS.c.name == sqlalchemy.bindparam("p_app"),
            _APPS.c.destroyed_at.is_(None),
            _ENVIRONMENTS.c.name == sqlalchemy.bindparam("p_environment"),
        )
        .scalar_subquery()
    )
)


def live_at(*, session: Session, environment: Environment, at: datetime) -> HistoryPublic:
    """The release live in `environment` at instant `at` (deployments never overlap), in one
    statement: the last deployment that went live at or before `at`, with its release."""
    connection = core_connection(session)
    params = {"p_environment": environment.id, "p_at": at}
    found = connection.execute(_LIVE_AT_BY_ID, params).first()
    return _history(found, environment.name, at)


def live_at_by_names(
    *, connection: Connection, app: str, environment: str, at: datetime
) -> HistoryPublic:
    """`live_at` in the app called `app`'s environment `environment`, on a Core connection;
    NotFound for a missing app or environment, as for nothing live."""
    params = {"p_app": app, "p_environment": environment, "p_at": at}
    found = connection.execute(_LIVE_AT_BY_NAMES, params).first()
    if found is None:
        with Session(bind=connection) as session:  # only to say which name is missing
            apps.environment_by_names(session=session, app=app, name=environment)
    return _history(found, environment, at)


def _history(
    found: Row[Any, *tuple[Any, ...]] | None, environment: str, at: datetime
) -> HistoryPublic:
    if found is None or (found.ended_at is not None and found.ended_at <= at):
        raise NotFound(f"nothing was live in {environment} at {at.isoformat()}")
    row = found._mapping
    release = {name: row[_RELEASE_PREFIX + name] for name in [*_RELEASE_FIELDS, "config_version"]}
    return HistoryPublic(
        at=at,
        release=ReleasePublic.model_validate(release),
        deployment=DeploymentPublic.model_validate(
            {
                **{name: row[name] for name in _DEPLOYMENT_FIELDS},
                "release_version": release["version"],
                "trigger": row["trigger"],
                "requested_by": row["requested_by"],
            }
        ),
    )


def list_deployments(
    *, session: Session, environment: Environment, limit: int
) -> list[DeploymentPublic]:
    """The environment's deployments, newest first (one query, with each one's release version)."""
    rows = session.exec(
        select(Deployment, Release.version, Pipeline.trigger, Pipeline.requested_by)
        .join(Release, col(Release.id) == col(Deployment.release_id))
        .outerjoin(Pipeline, col(Pipeline.id) == col(Deployment.pipeline_id))
        .where(Deployment.environment_id == environment.id)
        .order_by(col(Deployment.created_at).desc())
        .limit(limit)
    )
    return [deployment_view(*row) for row in rows]


def diff_releases(
    *, session: Session, environment: Environment, version: int, against: int, box: SecretBox
) -> ReleaseDiff:
    """What changed from `against` to `version`: the artifact, and config keys (never secrets)."""
    new = get_release_by_version(session=session, environment=environment, version=version)
    old = get_release_by_version(session=session, environment=environment, version=against)
    new_config = session.get(ConfigVersion, new.config_version_id)
    old_config = session.get(ConfigVersion, old.config_version_id)
    assert new_config is not None and old_config is not None
    return ReleaseDiff(
        version=version,
        against=against,
        artifact_changed=new.artifact_id != old.artifact_id,
        artifact_from=_artifact_side(session, old.artifact_id),
        artifact_to=_artifact_side(session, new.artifact_id),
        config=_config_changes(old_config, new_config, box),
    )


def _artifact_side(session: Session, artifact_id: str) -> ArtifactSide:
    artifact = session.get(Artifact, artifact_id)
    return ArtifactSide(id=artifact_id, commit=artifact.commit_sha if artifact else None)


def _shown(config: ConfigVersion, key: str, secret: bool) -> str:
    # A key secret on either side is secret on both: its earlier plain value is not shown either.
    return REDACTED if secret else config.plain_vars[key]


def _config_changes(old: ConfigVersion, new: ConfigVersion, box: SecretBox) -> list[ConfigChange]:
    old_values = decrypt_config(old, box)[0]
    new_values = decrypt_config(new, box)[0]
    changes: list[ConfigChange] = []
    for key in sorted(old_values.keys() | new_values.keys()):
        secret = key in old.secret_vars or key in new.secret_vars
        if key not in old_values:
            changes.append(
                ConfigChange(key=key, change="added", secret=secret, to=_shown(new, key, secret))
            )
        elif key not in new_values:
            changes.append(
                ConfigChange(
                    key=key, change="removed", secret=secret, from_=_shown(old, key, secret)
                )
            )
        elif old_values[key] != new_values[key] or (key in old.secret_vars) != (
            key in new.secret_vars
        ):
            changes.append(
                ConfigChange(
                    key=key,
                    change="changed",
                    secret=secret,
                    from_=_shown(old, key, secret),
                    to=_shown(new, key, secret),
                )
            )
    return changes
