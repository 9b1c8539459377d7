"""Key rotation: re-encrypt every stored secret under the newest key."""

from __future__ import annotations

from sqlmodel import Session, select

from shared.crypto import SecretBox
from shared.models import ConfigVersion


def rotate_secrets(*, session: Session, box: SecretBox) -> int:
    """Re-encrypt all secret config values with `box`'s newest key; returns how many.

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
    return count
