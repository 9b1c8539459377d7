"""What ran when: deployments over time, the release live at an instant, diffs of releases."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from shipyard.shared.constants import REDACTED
from shipyard.shared.crypto import SecretBox
from shipyard.shared.exceptions import NotFound
from shipyard.shared.models import (
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
)
from shipyard.shared.services.config import decrypt_config
from shipyard.shared.services.deployments import deployment_view
from shipyard.shared.services.releases import get_release_by_version, release_view


def live_at(*, session: Session, environment: Environment, at: datetime) -> HistoryPublic:
    """The release live in `environment` at instant `at` (deployments never overlap).

    One indexed query: the last deployment that went live at or before `at`, with its release.
    """
    row = session.exec(
        select(Deployment, Release, ConfigVersion.version, Pipeline)
        .join(Release, col(Release.id) == col(Deployment.release_id))
        .join(ConfigVersion, col(ConfigVersion.id) == col(Release.config_version_id))
        .outerjoin(Pipeline, col(Pipeline.id) == col(Deployment.pipeline_id))
        .where(
            Deployment.environment_id == environment.id,
            col(Deployment.started_at).is_not(None),
            col(Deployment.started_at) <= at,
        )
        .order_by(col(Deployment.started_at).desc())
        .limit(1)
    ).first()
    if row is None or (row[0].ended_at is not None and row[0].ended_at <= at):
        raise NotFound(f"nothing was live in {environment.name} at {at.isoformat()}")
    deployment, release, config_version, pipeline = row
    by = (pipeline.trigger, pipeline.requested_by) if pipeline is not None else (None, None)
    return HistoryPublic(
        at=at,
        release=release_view(release, config_version),
        deployment=deployment_view(deployment, release.version, *by),
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
