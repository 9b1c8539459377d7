"""Per-app webhook settings: the secret (encrypted, shown once), repository and ref rules."""

from __future__ import annotations

from sqlmodel import Session, col, select

from shipyard.shared.crypto import SecretBox
from shipyard.shared.exceptions import NotFound
from shipyard.shared.models import App, WebhookConfig, WebhookDelivery, utcnow
from shipyard.shared.schemas import HookConfigPublic, HookConfigUpdate, HookRule
from shipyard.shared.services import apps
from shipyard.shared.services.webhooks import HOOK_PATHS, new_secret


def configure(
    *, session: Session, box: SecretBox, app: App, data: HookConfigUpdate
) -> tuple[WebhookConfig, str | None]:
    """Set `app`'s hook config; returns it and the secret if one was generated (shown once)."""
    for rule in data.rules:
        apps.get_environment(session=session, app=app, name=rule.environment)
    config = session.exec(select(WebhookConfig).where(WebhookConfig.app_id == app.id)).first()
    generated = None
    if data.secret is not None:
        secret_token = box.encrypt(data.secret)
    elif config is None or data.rotate_secret:
        generated = new_secret()
        secret_token = box.encrypt(generated)
    else:
        secret_token = config.secret
    if config is None:
        config = WebhookConfig(app_id=app.id, secret=secret_token)
    config.secret = secret_token
    config.github_repository = data.github_repository.lower() if data.github_repository else None
    config.gitlab_project = data.gitlab_project.lower() if data.gitlab_project else None
    config.rules = [rule.model_dump(exclude_none=True) for rule in data.rules]
    config.updated_at = utcnow()
    session.add(config)
    session.flush()
    return config, generated


def get_config(*, session: Session, app: App) -> WebhookConfig:
    """`app`'s hook config, or NotFound."""
    config = session.exec(select(WebhookConfig).where(WebhookConfig.app_id == app.id)).first()
    if config is None:
        raise NotFound(
            f"app {app.name!r} has no webhooks configured (PUT /v1/apps/{app.name}/hooks)"
        )
    return config


def config_public(
    *, app: App, config: WebhookConfig, secret: str | None = None
) -> HookConfigPublic:
    """The API view of a hook config: never the stored secret, only one just generated."""
    return HookConfigPublic(
        app=app.name,
        github_repository=config.github_repository,
        gitlab_project=config.gitlab_project,
        rules=[HookRule.model_validate(rule) for rule in config.rules],
        urls=HOOK_PATHS,
        created_at=config.created_at,
        updated_at=config.updated_at,
        secret=secret,
    )


def recent_deliveries(*, session: Session, app: App, limit: int) -> list[WebhookDelivery]:
    """`app`'s deliveries, newest first."""
    query = select(WebhookDelivery).where(WebhookDelivery.app_id == app.id)
    return list(session.exec(query.order_by(col(WebhookDelivery.received_at).desc()).limit(limit)))


def rotate_hook_secrets(*, session: Session, box: SecretBox) -> int:
    """Re-encrypt every hook secret under `box`'s newest key; returns how many."""
    configs = list(session.exec(select(WebhookConfig)))
    for config in configs:
        config.secret = box.rotate(config.secret)
        session.add(config)
    session.flush()
    return len(configs)
