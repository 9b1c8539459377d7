"""The drain's metric: how long an old release's servers took to drain, and whether they did.

HAProxy is replaced by a fake runtime API (tests/router/test_router.py drives the real one).
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from shipyard.router.runtime import ServerState
from shipyard.router.traffic import Route, Traffic


class FakeRuntime:
    """A backend whose servers keep `sessions` open for the first `busy_for` looks."""

    def __init__(self, busy_for: int) -> None:
        self.busy_for = busy_for
        self.present = {"old-1"}

    def servers(self, backend: str) -> dict[str, ServerState]:
        self.busy_for -= 1
        sessions = 1 if self.busy_for >= 0 else 0
        return {name: ServerState(name, "DRAIN", sessions) for name in self.present}

    def drain_server(self, backend: str, server: str) -> None:
        pass

    def remove_server(self, backend: str, server: str) -> None:
        self.present.discard(server)


def _retire(runtime: FakeRuntime, drain_timeout: float, tmp_path: Path) -> Traffic:
    route = Route(
        backend="env_0",
        hosts=("staging.web.localhost",),
        drain_timeout=drain_timeout,
        app="web",
        environment="staging",
    )
    traffic = Traffic(runtime, tmp_path / "hosts.map", route)  # type: ignore[arg-type]
    traffic.retire([{"type": "web", "port": 5000, "server": "old-1"}])
    return traffic


def _count(outcome: str) -> float:
    labels = {"app": "web", "environment": "staging", "outcome": outcome}
    return REGISTRY.get_sample_value("shipyard_drain_duration_seconds_count", labels) or 0.0


def test_a_drain_that_ends_is_observed_as_drained(tmp_path: Path) -> None:
    drained, timed_out = _count("drained"), _count("timeout")

    traffic = _retire(FakeRuntime(busy_for=2), drain_timeout=30, tmp_path=tmp_path)

    assert traffic.drained_in is not None and traffic.drained_in < 30
    assert (_count("drained") - drained, _count("timeout") - timed_out) == (1, 0)


def test_a_drain_cut_at_its_timeout_is_observed_as_a_timeout(tmp_path: Path) -> None:
    drained, timed_out = _count("drained"), _count("timeout")

    _retire(FakeRuntime(busy_for=1_000_000), drain_timeout=0.1, tmp_path=tmp_path)

    assert (_count("drained") - drained, _count("timeout") - timed_out) == (0, 1)
