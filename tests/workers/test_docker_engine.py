"""The worker's Docker client: made at first use, once, and a failed connection is not kept."""

from __future__ import annotations

from typing import Any

import pytest
from docker.errors import DockerException

from shipyard.shared.exceptions import StageFailed
from shipyard.workers.docker_engine import DockerEngine


class Connections:
    """A stand-in for docker.from_env: counts connections, fails the first `failures` times."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.made: list[Any] = []

    def __call__(self) -> Any:
        if self.failures:
            self.failures -= 1
            raise DockerException("Error while fetching server API version: connection refused")
        client = object()
        self.made.append(client)
        return client


def test_nothing_connects_until_a_stage_asks_and_then_one_client_serves_every_stage() -> None:
    connections = Connections()
    engine = DockerEngine(connections)
    assert connections.made == []

    first, second = engine.client(), engine.client()

    assert first is second and connections.made == [first]


def test_an_engine_that_does_not_answer_fails_the_stage_and_the_next_stage_tries_again() -> None:
    connections = Connections(failures=1)
    engine = DockerEngine(connections)

    with pytest.raises(StageFailed, match="Docker engine does not answer"):
        engine.client()

    assert engine.client() is connections.made[0]
