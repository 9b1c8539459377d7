"""Config versions: immutable snapshots of an environment's vars, secrets encrypted."""

from __future__ import annotations

import uuid

from sqlmodel import Session, col, select

from shipyard.shared.constants import REDACTED, RESERVED_CONFIG_KEYS
from shipyard.shared.crypto import SecretBox
from shipyard.shared.db import fixed_limit, flush_or_conflict
from shipyard.shared.exceptions import InvalidInput, NotFound
from shipyard.shared.models import (
    ConfigVersion,
    Deployment,
    DeploymentStatus,
    Environment,
    Release,
)
from shipyard.shared.reserved_config import startup_reason
from shipyard.shared.schemas import ConfigPatch, ConfigPublic


def current_config(*, session: Session, environment: Environment) -> ConfigVersion:
    """The newest config version of `environment`."""
    config = newest_config(session=session, environment_id=environment.id)
    if config is None:
        raise NotFound(f"environment {environment.name!r} has no config")
    return config


def newest_config(*, session: Session, environment_id: uuid.UUID) -> ConfigVersion | None:
    """The newest config version of the environment (every environment has one from birth)."""
    return session.exec(
        select(ConfigVersion)
        .where(ConfigVersion.environment_id == environment_id)
        .order_by(col(ConfigVersion.version).desc())
        .limit(fixed_limit(1))
    ).first()


def patch_config(
    *, session: Session, environment: Environment, patch: ConfigPatch, box: SecretBox
) -> tuple[ConfigVersion, bool]:
    """Apply `patch` as a new version; returns it and whether anything changed."""
    current = current_config(session=session, environment=environment)
    plain = dict(current.plain_vars)
    secret = dict(current.secret_vars)
    changed = False
    for key, value in patch.vars.items():
        if key in RESERVED_CONFIG_KEYS:
            raise InvalidInput(f"{key} is set by Shipyard and cannot be configured")
        if value is not None and (reason := startup_reason(key)) is not None:
            # Unsetting one stays allowed, so that a version from before the rule can be mended.
            raise InvalidInput(f"{key} is a reserved config name: {reason}")
        make_secret = key in patch.secrets
        if value is None:
            changed |= plain.pop(key, None) is not None or secret.pop(key, None) is not None
            continue
        if make_secret:
            old = secret.get(key)
            if key in plain or old is None or box.decrypt(old) != value:
                plain.pop(key, None)
                secret[key] = box.encrypt(value)
                changed = True
        elif plain.get(key) != value:
            secret.pop(key, None)
            plain[key] = value
            changed = True
    for key in patch.secrets:
        if key in patch.vars:
            continue
        if key in plain:
            secret[key] = box.encrypt(plain.pop(key))
            changed = True
        elif key not in secret:
            raise InvalidInput(f"secrets names {key!r}, which is not set")
    if not changed:
        return current, False
    config = ConfigVersion(
        environment_id=environment.id,
        version=current.version + 1,
        plain_vars=plain,
        secret_vars=secret,
    )
    session.add(config)
    flush_or_conflict(session, "the config was changed at the same time; try again")
    return config, True


def live_config_version(*, session: Session, environment: Environment) -> int | None:
    """The config version of the release live in `environment` now; None if nothing is."""
    return session.exec(
        select(ConfigVersion.version)
        .join(Release, col(Release.config_version_id) == col(ConfigVersion.id))
        .join(Deployment, col(Deployment.release_id) == col(Release.id))
        .where(
            Deployment.environment_id == environment.id,
            Deployment.status == DeploymentStatus.LIVE,
        )
    ).first()


def config_public(config: ConfigVersion) -> ConfigPublic:
    """The API view: secret values shown as <redacted>."""
    shown = dict(config.plain_vars)
    shown.update(dict.fromkeys(config.secret_vars, REDACTED))
    return ConfigPublic(
        version=config.version, vars=dict(sorted(shown.items())), secrets=sorted(config.secret_vars)
    )


def decrypt_config(config: ConfigVersion, box: SecretBox) -> tuple[dict[str, str], set[str]]:
    """The environment a release runs with, and the set of its secret values."""
    secrets = {key: box.decrypt(token) for key, token in config.secret_vars.items()}
    return {**config.plain_vars, **secrets}, set(secrets.values())
