"""A canary's weights, and the drain's metric: how long an old release's servers took to drain,
and whether they did.

HAProxy is replaced by a fake runtime API (tests/router/test_router.py and
tests/router/test_traffic_split.py drive the real one).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from shipyard.router.runtime import ServerState
from shipyard.router.traffic import Route, Traffic, weights_for


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


def _share(weights: tuple[int, int], new_count: int, old_count: int) -> Fraction:
    """The share of requests the new servers get under roundrobin with these weights."""
    new, old = weights
    return Fraction(100 * new * new_count, new * new_count + old * old_count)


@pytest.mark.parametrize(
    ("share", "new_count", "old_count", "weights"),
    [
        (0, 1, 1, (0, 1)),  # nothing to the new release; the old at HAProxy's default weight
        (0, 3, 2, (0, 1)),
        (100, 1, 1, (1, 0)),
        (100, 2, 3, (1, 0)),
        (10, 1, 1, (1, 9)),
        (10, 2, 2, (1, 9)),
        (10, 2, 3, (1, 6)),  # 2 × 1 against 3 × 6: 2 in 20
        (10, 3, 1, (1, 27)),
        (50, 1, 1, (1, 1)),
        (50, 2, 1, (1, 2)),
        (25, 1, 3, (1, 1)),
        (33, 1, 1, (33, 67)),
        (1, 1, 100, (100, 99)),
        (99, 1, 1, (99, 1)),
        # Beyond HAProxy's 256: as close as weights go (3 in 259, 256 in 259).
        (1, 3, 1, (1, 256)),
        (99, 1, 3, (256, 1)),
        # No old server: the new ones take everything; no new one: the old ones.
        (10, 2, 0, (1, 0)),
        (0, 2, 0, (1, 0)),
        (10, 0, 2, (0, 1)),
    ],
)
def test_weights_give_the_new_release_its_share(
    share: int, new_count: int, old_count: int, weights: tuple[int, int]
) -> None:
    assert weights_for(share, new_count, old_count) == weights


@pytest.mark.parametrize("share", range(1, 100))
@pytest.mark.parametrize(("new_count", "old_count"), [(1, 1), (1, 2), (2, 1), (2, 2)])
def test_weights_are_the_smallest_giving_the_share_exactly(
    share: int, new_count: int, old_count: int
) -> None:
    new, old = weights_for(share, new_count, old_count)

    assert 1 <= new <= 256 and 1 <= old <= 256
    assert _share((new, old), new_count, old_count) == share
    # No smaller pair gives it: the ratio is in its lowest terms.
    assert Fraction(new, old).numerator == new


@pytest.mark.parametrize(
    ("share", "new_count", "old_count"),
    [(7, 3, 7), (1, 5, 1), (97, 2, 9), (99, 2, 3), (1, 3, 2), (67, 1, 4)],
)
def test_weights_beyond_256_are_the_closest_there_are(
    share: int, new_count: int, old_count: int
) -> None:
    weights = weights_for(share, new_count, old_count)

    best = min(
        abs(_share((new, old), new_count, old_count) - share)
        for new in range(1, 257)
        for old in range(1, 257)
    )
    assert abs(_share(weights, new_count, old_count) - share) == best
    assert max(weights) <= 256


@pytest.mark.parametrize("share", [-1, 101])
def test_a_share_is_a_percentage(share: int) -> None:
    with pytest.raises(ValueError, match="percentage"):
        weights_for(share, 1, 1)


class WeighingRuntime:
    """A backend's servers and weights, and every change made to them, in order."""

    def __init__(self, present: dict[str, ServerState]) -> None:
        self.present = present
        self.changes: list[str] = []

    def servers(self, backend: str) -> dict[str, ServerState]:
        return dict(self.present)

    def routes(self, map_path: Path) -> dict[str, str]:
        return {"staging.web.localhost": "env_0"}

    def add_server(
        self, backend: str, server: str, address: str, port: int, *, weight: int = 1
    ) -> None:
        self.changes.append(f"add {server} {weight}")
        self.present[server] = ServerState(server, "no check", 0, weight)

    def set_weight(self, backend: str, server: str, weight: int) -> None:
        self.changes.append(f"weight {server} {weight}")
        self.present[server] = ServerState(server, "no check", 0, weight)


def _split(runtime: WeighingRuntime, tmp_path: Path, share: int) -> tuple[int, int]:
    route = Route(backend="env_0", hosts=("staging.web.localhost",), drain_timeout=30)
    traffic = Traffic(runtime, tmp_path / "hosts.map", route)  # type: ignore[arg-type]
    new = [{"type": "web", "port": 5001, "server": "new-1"}]
    old = [{"type": "web", "port": 5000, "server": "old-1"}]
    return traffic.split(new, old, share)


def test_a_server_is_added_once_the_others_have_their_weights(tmp_path: Path) -> None:
    runtime = WeighingRuntime({"old-1": ServerState("old-1", "no check", 0)})

    assert _split(runtime, tmp_path, 1) == (1, 99)
    assert runtime.changes == ["weight old-1 99", "add new-1 1"]


def test_no_moment_has_every_server_at_weight_0(tmp_path: Path) -> None:
    runtime = WeighingRuntime({"old-1": ServerState("old-1", "no check", 0, 9)})

    _split(runtime, tmp_path, 100)  # the new server added first, the old one at 0 after
    assert runtime.changes == ["add new-1 1", "weight old-1 0"]
    runtime.changes.clear()

    _split(runtime, tmp_path, 0)  # the old one back first, the new one at 0 after
    assert runtime.changes == ["weight old-1 1", "weight new-1 0"]
