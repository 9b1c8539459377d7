"""The embedded broker: the wheel's Valkey server on the data dir's socket, with its AOF."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shipyard.serve import broker
from shipyard.shared.exceptions import ConfigurationError
from shipyard.shared.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data")
    settings.broker_dir.mkdir(parents=True)
    return settings


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def start(settings: Settings, servers: list[subprocess.Popen[bytes]]) -> redis.Redis:
    command = broker.server_command(settings, broker.server_binary(settings))
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    servers.append(process)
    broker.wait_until_ready(settings, process)
    return redis.Redis.from_url(settings.redis_url)


@pytest.mark.network
def test_the_server_listens_on_the_data_dirs_socket_only_and_never_evicts(
    settings: Settings, servers: list[subprocess.Popen[bytes]]
) -> None:
    client = start(settings, servers)

    assert settings.broker_socket.is_socket()
    config = client.config_get("*")
    assert config["port"] == "0"
    assert config["appendonly"] == "yes"
    assert config["maxmemory-policy"] == "noeviction"
    assert Path(config["dir"]) == settings.broker_dir
    assert oct(settings.broker_socket.stat().st_mode & 0o777) == "0o700"


@pytest.mark.network
def test_what_the_server_acknowledged_survives_its_sigkill(
    settings: Settings, servers: list[subprocess.Popen[bytes]]
) -> None:
    client = start(settings, servers)
    client.lpush("shipyard:build", "a queued message")
    servers[-1].kill()
    servers[-1].wait()
    client.close()

    client = start(settings, servers)  # same data dir; the stale socket file is replaced

    assert client.lrange("shipyard:build", 0, -1) == [b"a queued message"]


def test_a_missing_server_binary_is_refused_clearly(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, broker_server=tmp_path / "no-such-server")

    with pytest.raises(ConfigurationError, match="SHIPYARD_BROKER_SERVER=.* is not an executable"):
        broker.server_binary(settings)


@pytest.mark.network
def test_a_server_that_exits_while_starting_is_reported(
    settings: Settings, servers: list[subprocess.Popen[bytes]]
) -> None:
    command = [*broker.server_command(settings, broker.server_binary(settings)), "--no-such-option"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    servers.append(process)

    with pytest.raises(ConfigurationError, match="exited with status 1 while starting"):
        broker.wait_until_ready(settings, process)
