"""A canary's split of an environment's requests between two releases, through a real HAProxy:
the share each release gets, a new server weighted before its first request, the split made
again after the router lost a server, and the way back to one release (serve, or an abort)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.router import haproxy
from shipyard.router.runtime import RuntimeAPI
from shipyard.router.traffic import Traffic
from shipyard.shared.process_record import ProcessRecord
from shipyard.shared.settings import Settings
from tests.integration.stack import free_port
from tests.router.test_router import Backend, client, started, traffic

pytestmark = pytest.mark.network

BACKEND = haproxy.backend_name(0)
# Requests sent to measure a share, and how far from it the measure may be (in points).
REQUESTS = 2000
TOLERANCE = 3.0


class RecordingAPI(RuntimeAPI):
    """The runtime API, with every command it sends kept."""

    def __init__(self, socket_path: Path) -> None:
        super().__init__(socket_path)
        self.sent: list[str] = []

    def command(self, line: str) -> str:
        self.sent.append(line)
        return super().command(line)

    def changes(self) -> list[str]:
        """The commands sent that change something (not `show …`), and forget them all."""
        sent, self.sent = self.sent, []
        return [line for line in sent if not line.startswith("show ")]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", router_port=free_port(), router_slots=4)


@pytest.fixture
def router(settings: Settings) -> Iterator[RecordingAPI]:
    with started(settings):
        yield RecordingAPI(settings.router_socket)


@pytest.fixture
def releases() -> Iterator[dict[str, list[Backend]]]:
    """Two processes of each release, answering `new-1`, `new-2`, `old-1` and `old-2`."""
    made = {release: [Backend(f"{release}-{n}") for n in (1, 2)] for release in ("new", "old")}
    yield made
    for backends in made.values():
        for backend in backends:
            backend.close()


def processes(backends: list[Backend], count: int = 2) -> list[ProcessRecord]:
    return [b.process(f"{b.name}-p{b.port}") for b in backends[:count]]


def answers(settings: Settings, requests: int) -> Counter[str]:
    """Who answered each of `requests` requests."""
    with client(settings) as http:
        return Counter(http.get("/").text for _ in range(requests))


def share_of_new(answered: Counter[str]) -> float:
    new = sum(count for name, count in answered.items() if name.startswith("new"))
    return 100 * new / sum(answered.values())


def weights(router: RuntimeAPI) -> dict[str, int]:
    return {name: state.weight for name, state in router.servers(BACKEND).items()}


def serving(router: RuntimeAPI, settings: Settings, releases: dict[str, list[Backend]]) -> Traffic:
    """The old release's two processes serving the environment, as a deploy left them."""
    switch = traffic(router, settings)
    switch.serve(processes(releases["old"]))
    return switch


@pytest.mark.parametrize("count", [1, 2])
@pytest.mark.parametrize("share", [10, 50])
def test_the_new_release_gets_its_share_of_requests(
    router: RecordingAPI,
    settings: Settings,
    releases: dict[str, list[Backend]],
    share: int,
    count: int,
) -> None:
    switch = traffic(router, settings)
    switch.serve(processes(releases["old"], count))

    given = switch.split(
        processes(releases["new"], count), processes(releases["old"], count), share
    )

    answered = answers(settings, REQUESTS)
    assert abs(share_of_new(answered) - share) <= TOLERANCE, answered
    # Every process of each release takes its part.
    assert set(answered) == {f"{release}-{n}" for release in ("new", "old") for n in (1, 2)[:count]}
    assert given == ((1, 9) if share == 10 else (1, 1))


def test_at_share_0_no_request_reaches_the_new_release_even_while_it_is_added(
    router: RecordingAPI, settings: Settings, releases: dict[str, list[Backend]]
) -> None:
    switch = serving(router, settings, releases)
    answered: Counter[str] = Counter()
    stop = threading.Event()

    def send_all_along() -> None:
        with client(settings) as http:
            while not stop.is_set():
                answered[http.get("/").text] += 1

    sender = threading.Thread(target=send_all_along)
    sender.start()
    try:
        switch.split(processes(releases["new"]), processes(releases["old"]), 0)
        answered.update(answers(settings, 200))
    finally:
        stop.set()
        sender.join(timeout=30)

    assert set(answered) == {"old-1", "old-2"}
    assert weights(router) == {
        **{server["server"]: 0 for server in processes(releases["new"])},
        **{server["server"]: 1 for server in processes(releases["old"])},
    }


def test_a_split_made_again_changes_only_what_differs(
    router: RecordingAPI, settings: Settings, releases: dict[str, list[Backend]]
) -> None:
    switch = serving(router, settings, releases)
    new, old = processes(releases["new"]), processes(releases["old"])
    switch.split(new, old, 10)
    router.changes()

    switch.split(new, old, 10)
    assert router.changes() == []

    switch.split(new, old, 50)
    # The new servers already have weight 1: only the old ones change, from 9 to 1.
    assert sorted(router.changes()) == [
        f"set server {BACKEND}/{server['server']} weight 1" for server in old
    ]


def test_a_split_adds_again_a_new_server_the_router_lost(
    router: RecordingAPI, settings: Settings, releases: dict[str, list[Backend]]
) -> None:
    switch = serving(router, settings, releases)
    new, old = processes(releases["new"]), processes(releases["old"])
    switch.split(new, old, 50)
    router.remove_server(BACKEND, str(new[0]["server"]))  # as a restarted HAProxy would lose it

    switch.split(new, old, 50)

    assert weights(router)[str(new[0]["server"])] == 1
    answered = answers(settings, 400)
    assert abs(share_of_new(answered) - 50) <= TOLERANCE
    assert answered["new-1"] > 0


def test_a_new_server_left_in_maintenance_is_weighted_and_enabled(
    router: RecordingAPI, settings: Settings, releases: dict[str, list[Backend]]
) -> None:
    switch = serving(router, settings, releases)
    new, old = processes(releases["new"], 1), processes(releases["old"])
    # Added, and the split cut short before it was enabled.
    router.command(f"add server {BACKEND}/{new[0]['server']} 127.0.0.1:{new[0]['port']}")

    switch.split(new, old, 20)

    (state,) = [s for name, s in router.servers(BACKEND).items() if name == new[0]["server"]]
    assert state.status != "MAINT" and state.weight == 1
    assert weights(router)[str(old[0]["server"])] == 2  # 1 against 2 × 2: 20 %
    assert abs(share_of_new(answers(settings, 500)) - 20) <= TOLERANCE


def test_serve_puts_a_canarys_servers_back_to_their_default_weight(
    router: RecordingAPI, settings: Settings, releases: dict[str, list[Backend]]
) -> None:
    switch = serving(router, settings, releases)
    new, old = processes(releases["new"]), processes(releases["old"])
    switch.split(new, old, 100)
    assert set(answers(settings, 50)) == {"new-1", "new-2"}
    switch.split(new, old, 10)

    switch.serve(new)
    switch.retire(old)

    assert weights(router) == {str(server["server"]): 1 for server in new}
    assert set(answers(settings, 50)) == {"new-1", "new-2"}


def test_an_aborted_canary_leaves_the_old_release_as_it_was(
    router: RecordingAPI, settings: Settings, releases: dict[str, list[Backend]]
) -> None:
    switch = serving(router, settings, releases)
    new, old = processes(releases["new"]), processes(releases["old"])
    switch.split(new, old, 10)

    switch.split(new, old, 0)
    switch.retire(new)

    assert weights(router) == {str(server["server"]): 1 for server in old}
    assert set(answers(settings, 100)) == {"old-1", "old-2"}
    assert router.routes(settings.router_map) == {"staging.web.localhost": BACKEND}


def test_unsplit_puts_the_old_release_back_and_does_nothing_without_the_canary(
    router: RecordingAPI, settings: Settings, releases: dict[str, list[Backend]]
) -> None:
    switch = serving(router, settings, releases)
    new, old = processes(releases["new"]), processes(releases["old"])
    router.changes()

    assert switch.unsplit(new, old) is False  # never split: the router is left alone
    assert router.changes() == []

    switch.split(new, old, 50)
    assert switch.unsplit(new, old) is True

    assert weights(router) == {str(server["server"]): 1 for server in old}
    assert set(answers(settings, 100)) == {"old-1", "old-2"}
    assert switch.unsplit(new, old) is False  # done once: nothing left to undo


def test_a_drained_server_served_again_takes_requests_again(
    router: RecordingAPI, settings: Settings, releases: dict[str, list[Backend]]
) -> None:
    switch = serving(router, settings, releases)
    new, old = processes(releases["new"]), processes(releases["old"])
    switch.serve(new)
    switch.drain(old)  # the old release out of rotation, its servers still present
    assert set(answers(settings, 20)) == {"new-1", "new-2"}

    switch.serve(old)  # a rollback taking them back before they were removed
    switch.drain(new)

    assert set(answers(settings, 20)) == {"old-1", "old-2"}
