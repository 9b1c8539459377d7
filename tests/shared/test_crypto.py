"""SecretBox: secret config values encrypted at rest."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from shipyard.shared.crypto import SecretBox
from shipyard.shared.exceptions import ConfigurationError


def test_a_value_round_trips_and_its_token_does_not_contain_it() -> None:
    box = SecretBox(Fernet.generate_key())

    token = box.encrypt("hunter2-database-password")

    assert "hunter2" not in token
    assert box.decrypt(token) == "hunter2-database-password"


def test_the_same_value_encrypts_to_different_tokens() -> None:
    box = SecretBox(Fernet.generate_key())

    assert box.encrypt("same") != box.encrypt("same")


def test_a_token_made_with_another_key_is_a_configuration_error() -> None:
    token = SecretBox(Fernet.generate_key()).encrypt("value")

    with pytest.raises(ConfigurationError, match="cannot be decrypted"):
        SecretBox(Fernet.generate_key()).decrypt(token)
