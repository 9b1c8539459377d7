"""Secret config values at rest: Fernet tokens, decrypted only by the workers that need them.

The key may be a comma-separated list, newest first (MultiFernet): values are encrypted with the
first key and decrypted with any, which is how a key is rotated without downtime.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from shipyard.shared.exceptions import ConfigurationError


def parse_keys(keys: bytes) -> list[Fernet]:
    """Fernet keys from `new,old,…`; raises ValueError on a malformed key."""
    parts = [part.strip() for part in keys.split(b",") if part.strip()]
    if not parts:
        raise ValueError("no key given")
    return [Fernet(part) for part in parts]


class SecretBox:
    """Encrypts with the installation's newest key, decrypts with any of its keys."""

    def __init__(self, keys: bytes, reload: Callable[[], bytes] | None = None) -> None:
        self._fernet = MultiFernet(parse_keys(keys))
        # Embedded mode reads its keys from a file that `secrets rotate-key` rewrites: a value
        # this box cannot decrypt makes it read the file once more before giving up.
        self._reload = reload

    def encrypt(self, value: str) -> str:
        """A Fernet token for `value`, under the newest key."""
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        """The value behind `token`; a wrong key is a configuration error, not a crash."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            if self._reload is not None:
                self._fernet = MultiFernet(parse_keys(self._reload()))
                try:
                    return self._fernet.decrypt(token.encode()).decode()
                except InvalidToken:
                    pass
        raise ConfigurationError(
            "a secret cannot be decrypted with SHIPYARD_SECRET_KEY (was the key changed?)"
        )

    def rotate(self, token: str) -> str:
        """`token` re-encrypted under the newest key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken as exc:
            raise ConfigurationError(
                "a secret cannot be decrypted with any key of SHIPYARD_SECRET_KEY"
            ) from exc
