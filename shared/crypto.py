"""Secret config values at rest: Fernet tokens, decrypted only by the workers that need them."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from shared.exceptions import ConfigurationError


class SecretBox:
    """Encrypts and decrypts secret values with the installation's key."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def encrypt(self, value: str) -> str:
        """A Fernet token for `value`."""
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        """The value behind `token`; a wrong key is a configuration error, not a crash."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ConfigurationError(
                "a secret cannot be decrypted with SHIPYARD_SECRET_KEY (was the key changed?)"
            ) from exc
