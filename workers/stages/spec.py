"""The runner's view of a release: IDs, artifact, health check, limits and decrypted config."""

from __future__ import annotations

import structlog
from sqlmodel import Session

from shipyard.shared import routing
from shipyard.shared.exceptions import StageFailed
from shipyard.shared.logging import register_secrets
from shipyard.shared.models import App, ConfigVersion, Environment, Release
from shipyard.shared.reserved_config import without_startup_variables
from shipyard.shared.services.config import decrypt_config
from shipyard.workers.context import WorkerContext
from shipyard.workers.runners.base import ReleaseSpec
from shipyard.workers.stages.frame import get_row

log = structlog.get_logger(__name__)


def release_spec(
    session: Session,
    context: WorkerContext,
    release: Release,
    deployment_id: str,
    only_type: str | None = None,
) -> ReleaseSpec:
    """Everything a runner needs for `release` (with `only_type`, to start that process type
    alone); its secret values are registered for redaction."""
    environment = get_row(session, Environment, release.environment_id)
    app = get_row(session, App, environment.app_id)
    if app.destroyed_at is not None:  # while its pipeline was starting: nothing of it may run
        raise StageFailed("its app was destroyed (shipyard apps destroy): nothing of it runs")
    config = get_row(session, ConfigVersion, release.config_version_id)
    env, secret_values = decrypt_config(config, context.box)
    register_secrets(secret_values)
    kept = without_startup_variables(env)
    if dropped := sorted(env.keys() - kept.keys()):
        log.warning("release.reserved_config_dropped", names=dropped)
    env = kept
    structlog.contextvars.bind_contextvars(release_id=str(release.id))
    return ReleaseSpec(
        app=app.name,
        environment=environment.name,
        release_id=str(release.id),
        release_version=release.version,
        deployment_id=deployment_id,
        artifact_id=release.artifact_id,
        health_path=environment.health_path,
        health_timeout=environment.health_timeout,
        env=env,
        memory_limit=environment.memory_limit,
        cpu_limit=environment.cpu_limit,
        storage_dir=environment.storage_dir,
        formation=dict(environment.formation),
        host=context.settings.host_name,
        health_host=health_host(app.name, environment),
        only_type=only_type,
    )


def health_host(app: str, environment: Environment) -> str:
    """The name a browser would send in Host: its first domain, else its stable host name (an
    app that checks Host, as Django's ALLOWED_HOSTS does, lists the names it is reached by)."""
    names = routing.hosts(app, environment.name, list(environment.domains))
    return names[1] if len(names) > 1 else names[0]
