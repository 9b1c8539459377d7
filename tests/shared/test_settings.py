"""Settings: embedded defaults, generated keys and tokens, and the refusal of unsafe values."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr, ValidationError

from shipyard.shared.artifacts import StoreLocation
from shipyard.shared.crypto import SecretBox
from shipyard.shared.exceptions import ConfigurationError
from shipyard.shared.settings import Settings


def test_without_a_broker_settings_are_embedded_with_sqlite_in_the_data_dir(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path)

    assert settings.mode == "embedded"
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path / 'shipyard.db'}"
    assert settings.artifact_store_location == StoreLocation(directory=tmp_path / "artifacts")
    assert settings.broker_dir == tmp_path / "broker"
    assert settings.broker_socket == tmp_path / "broker" / "broker.sock"
    assert settings.celery_broker_url == f"redis+socket://{tmp_path}/broker/broker.sock"
    assert settings.redis_url == f"unix://{tmp_path}/broker/broker.sock"


def test_a_data_dir_too_deep_for_a_unix_socket_puts_the_socket_in_the_temporary_folder(
    tmp_path: Path,
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    settings = Settings(data_dir=deep)

    socket = settings.broker_socket
    assert len(str(socket).encode()) <= 107
    assert not socket.is_relative_to(deep)
    # Every process of the installation computes the same path from the same data dir.
    assert Settings(data_dir=deep).broker_socket == socket
    assert Settings(data_dir=deep / "other").broker_socket != socket


def test_a_relative_data_dir_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    settings = Settings(data_dir=Path("relative"))

    assert settings.data_dir == tmp_path / "relative"
    assert settings.data_dir.is_absolute()


def test_settings_are_read_from_shipyard_environment_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SHIPYARD_DATABASE_URL", "postgresql+psycopg://db/shipyard")
    monkeypatch.setenv("SHIPYARD_BUILD_TIMEOUT", "12.5")

    settings = Settings()

    assert settings.data_dir == tmp_path
    assert settings.sqlalchemy_url == "postgresql+psycopg://db/shipyard"
    assert settings.build_timeout == 12.5


def test_embedded_mode_generates_its_fernet_key_once_into_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)

    key = settings.fernet_key()

    key_file = tmp_path / "secret.key"
    assert key_file.read_text().strip() == key.decode()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Settings(data_dir=tmp_path).fernet_key() == key
    box = SecretBox(key)
    assert box.decrypt(box.encrypt("value")) == "value"


def test_embedded_mode_generates_a_long_admin_token_once(tmp_path: Path) -> None:
    token = Settings(data_dir=tmp_path).api_token()

    assert len(token) >= 32
    assert stat.S_IMODE((tmp_path / "admin-token").stat().st_mode) == 0o600
    assert Settings(data_dir=tmp_path).api_token() == token
    assert not list(tmp_path.glob("*.tmp"))


def test_a_configured_secret_key_and_admin_token_are_used_as_given(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    token = "a-long-enough-admin-token"

    settings = Settings(data_dir=tmp_path, secret_key=SecretStr(key), admin_token=SecretStr(token))

    assert settings.fernet_key() == key.encode()
    assert settings.api_token() == token
    assert not (tmp_path / "secret.key").exists()
    assert not (tmp_path / "admin-token").exists()


def test_a_secret_key_that_is_not_a_fernet_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="must be a Fernet key"):
        Settings(data_dir=tmp_path, secret_key=SecretStr("not-a-fernet-key"))


@pytest.mark.parametrize("token", ["changethis", "CHANGEME", "password", "short-token"])
def test_a_placeholder_or_short_admin_token_is_refused(tmp_path: Path, token: str) -> None:
    with pytest.raises(ValidationError, match="placeholder or shorter than 16"):
        Settings(data_dir=tmp_path, admin_token=SecretStr(token))


def test_distributed_mode_requires_a_secret_key(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="SHIPYARD_SECRET_KEY is required"):
        Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/0")


@pytest.mark.parametrize("url", ["amqp://guest@localhost//", "memory://", "filesystem://"])
def test_a_broker_that_is_not_redis_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValidationError, match="SHIPYARD_BROKER_URL must be a Redis URL"):
        Settings(data_dir=tmp_path, broker_url=url, secret_key=Fernet.generate_key().decode())


def test_a_redis_socket_broker_is_used_for_locks_too(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        broker_url="redis+socket:///run/redis.sock",
        secret_key=SecretStr(Fernet.generate_key().decode()),
    )

    assert settings.mode == "distributed"
    assert settings.redis_url == "unix:///run/redis.sock"


def test_distributed_mode_never_generates_an_admin_token(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        broker_url="redis://127.0.0.1:6379/0",
        secret_key=SecretStr(Fernet.generate_key().decode()),
    )

    assert settings.mode == "distributed"
    with pytest.raises(ConfigurationError, match="SHIPYARD_ADMIN_TOKEN is required"):
        settings.api_token()
    assert not (tmp_path / "admin-token").exists()


def test_worker_metrics_go_to_a_folder_per_host_below_the_metrics_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "build-1")
    default = Settings(data_dir=tmp_path)
    monkeypatch.chdir(tmp_path)
    chosen = Settings(data_dir=tmp_path, metrics_dir=Path("elsewhere"))

    assert default.metrics_root == tmp_path / "metrics"
    assert default.host_metrics_dir == tmp_path / "metrics" / "build-1"
    assert chosen.host_metrics_dir == tmp_path / "elsewhere" / "build-1"
