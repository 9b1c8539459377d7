"""Key rotation: re-encrypt every stored secret under the newest key."""

from __future__ import annotations

from sqlmodel import Session, select

from shipyard.shared.crypto import SecretBox
from shipyard.shared.models import ConfigVersion
from shipyard.shared.services.certificates import rotate_keys as rotate_certificate_keys
from shipyard.shared.services.hook_config import rotate_hook_secrets
from shipyard.shared.services.notifications import rotate_subscription_secrets


def rotate_secrets(*, session: Session, box: SecretBox) -> int:
    """Re-encrypt every stored secret (config, webhook and subscription secrets, certificates'
    and the ACME account's keys) under `box`'s newest key; returns how many.

    The values themselves do not change, so every release, old ones included, still runs with
    exactly the config it was made with.
    """
    count = 0
    for config in session.exec(select(ConfigVersion)):
        if not config.secret_vars:
            continue
        config.secret_vars = {key: box.rotate(token) for key, token in config.secret_vars.items()}
        session.add(config)
        count += len(config.secret_vars)
    session.flush()
    count += rotate_hook_secrets(session=session, box=box)
    count += rotate_certificate_keys(session=session, box=box)
    return count + rotate_subscription_secrets(session=session, box=box)
