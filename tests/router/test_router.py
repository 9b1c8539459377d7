"""The router's HAProxy for real: its config, routes and servers changed through the runtime
API, and the drained switch of router.traffic."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from shipyard.router import haproxy
from shipyard.router.runtime import RouterError, RuntimeAPI
from shipyard.router.traffic import Route, Traffic
from shipyard.shared.settings import Settings
from tests.integration.stack import free_port


class Backend:
    """A tiny HTTP server that answers its name (and takes a second on /slow, three on
    /slower), with `status`."""

    def __init__(self, name: str, status: int = 200) -> None:
        self.name = name
        self.port = free_port()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go in two writes: without this, Nagle's algorithm and the peer's
            # delayed ACK hold the body back 40 ms.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                if self.path == "/slow":
                    time.sleep(1)
                if self.path == "/slower":
                    time.sleep(3)
                body = name.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(
            target=lambda: outer.server.serve_forever(poll_interval=0.05), daemon=True
        )
        self.thread.start()

    def process(self, server: str) -> dict[str, object]:
        return {"type": "web", "port": self.port, "server": server}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", router_port=free_port(), router_slots=4)


@contextmanager
def started(settings: Settings) -> Iterator[RuntimeAPI]:
    """HAProxy with the router's config, started as `shipyard router` starts it."""
    argv, env = haproxy.command(settings)
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        haproxy.wait_until_ready(settings, process)
        yield RuntimeAPI(settings.router_dir / "admin.sock")
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def router(settings: Settings) -> Iterator[RuntimeAPI]:
    with started(settings) as api:
        yield api


@pytest.fixture
def backends() -> Iterator[dict[str, Backend]]:
    made = {name: Backend(name) for name in ("old", "new")}
    yield made
    for backend in made.values():
        backend.close()


def client(settings: Settings, host: str = "staging.web.localhost") -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{settings.router_port}",
        headers={"Host": f"{host}:{settings.router_port}"},
        trust_env=False,
        timeout=10,
    )


def traffic(router: RuntimeAPI, settings: Settings, drain: float = 10) -> Traffic:
    route = Route(
        backend=haproxy.backend_name(0), hosts=("staging.web.localhost",), drain_timeout=drain
    )
    return Traffic(router, settings.router_dir / "hosts.map", route)


def test_the_config_is_valid_and_declares_a_backend_per_slot(settings: Settings) -> None:
    argv, env = haproxy.command(settings)
    checked = subprocess.run(
        [argv[0], "-c", "-f", argv[-1]], env=env, capture_output=True, text=True
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = haproxy.config(settings)
    assert [f"backend {haproxy.backend_name(n)}" in config for n in range(4)] == [True] * 4


def test_http_is_redirected_to_the_https_port_clients_reach(tmp_path: Path) -> None:
    listening = Settings(data_dir=tmp_path, router_https_port=8443)
    forwarded = Settings(data_dir=tmp_path, router_https_port=8443, router_https_public_port=443)

    assert "location https://%[var(txn.host)]:8443%[capture.req.uri] code 308" in (
        haproxy.config(listening)
    )
    assert "location https://%[var(txn.host)]%[capture.req.uri] code 308" in (
        haproxy.config(forwarded)
    )


@pytest.mark.network
def test_the_admin_socket_shows_none_of_shipyards_environment(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "SHIPYARD_ADMIN_TOKEN": "shp_admin-token-that-must-not-leak",
        "SHIPYARD_SECRET_KEY": "secret-key-that-must-not-leak",
        "SHIPYARD_DATABASE_URL": "postgresql://shipyard:db-password-that-must-not-leak@db/x",
        "AWS_SECRET_ACCESS_KEY": "cloud-key-that-must-not-leak",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)

    with started(settings) as api:
        shown = api.command("show env")

    assert "PATH=" in shown  # the command answered
    for name, value in secrets.items():
        assert name not in shown and value not in shown
    names = {line.split("=", 1)[0] for line in shown.splitlines() if "=" in line}
    own = {name for name in names if name.startswith("HAPROXY_")}  # set by HAProxy itself
    assert names - own <= {"PATH", "LANG", "LC_ALL", "TZ", "LD_LIBRARY_PATH"}


@pytest.mark.network
def test_an_unknown_host_gets_a_404_that_says_how_to_reach_an_environment(
    router: RuntimeAPI, settings: Settings
) -> None:
    with client(settings, host="nothing.here.localhost") as http:
        answer = http.get("/")

    assert answer.status_code == 404
    assert "ENV.APP.localhost" in answer.text


@pytest.mark.network
def test_served_processes_answer_at_the_host_name(
    router: RuntimeAPI, settings: Settings, backends: dict[str, Backend]
) -> None:
    traffic(router, settings).serve([backends["old"].process("old-1")])

    with client(settings) as http:
        assert http.get("/").text == "old"
    assert router.routes(settings.router_dir / "hosts.map") == {
        "staging.web.localhost": haproxy.backend_name(0)
    }


@pytest.mark.network
def test_a_removed_route_gets_the_unknown_host_answer(
    router: RuntimeAPI, settings: Settings, backends: dict[str, Backend]
) -> None:
    traffic(router, settings).serve([backends["old"].process("old-1")])

    router.remove_route(settings.router_dir / "hosts.map", "staging.web.localhost")

    with client(settings) as http:
        assert http.get("/").status_code == 404
    assert router.routes(settings.router_dir / "hosts.map") == {}


@pytest.mark.network
def test_a_switch_drains_the_old_server_before_removing_it(
    router: RuntimeAPI, settings: Settings, backends: dict[str, Backend]
) -> None:
    switch = traffic(router, settings)
    switch.serve([backends["old"].process("old-1")])
    in_flight: list[httpx.Response] = []
    slow = threading.Thread(target=lambda: in_flight.append(client(settings).get("/slow")))
    slow.start()
    time.sleep(0.3)  # the slow request is on the old server now

    switch.serve([backends["new"].process("new-1")])
    switch.retire([backends["old"].process("old-1")])
    slow.join(timeout=10)

    assert in_flight and in_flight[0].text == "old"  # finished, not cut
    assert switch.drained_in is not None and switch.drained_in >= 0.3
    assert set(router.servers(haproxy.backend_name(0))) == {"new-1"}
    with client(settings) as http:
        assert {http.get("/").text for _ in range(5)} == {"new"}


@pytest.mark.network
def test_a_drain_that_does_not_end_is_cut_at_the_timeout(
    router: RuntimeAPI, settings: Settings, backends: dict[str, Backend]
) -> None:
    switch = traffic(router, settings, drain=0.2)
    switch.serve([backends["old"].process("old-1")])
    slow = threading.Thread(target=lambda: _get_quietly(settings, "/slower"))
    slow.start()
    time.sleep(0.3)  # the request has 2.7 s to go: far longer than the 0.2 s drain timeout

    switch.serve([backends["new"].process("new-1")])
    switch.retire([backends["old"].process("old-1")])
    slow.join(timeout=10)

    assert switch.drained_in is not None and switch.drained_in < 1.0
    assert set(router.servers(haproxy.backend_name(0))) == {"new-1"}


def _get_quietly(settings: Settings, path: str) -> None:
    try:
        client(settings).get(path)
    except httpx.HTTPError:
        pass  # cut at the drain timeout: what the test expects may happen


@pytest.mark.network
def test_a_refused_command_raises_with_haproxys_words(router: RuntimeAPI) -> None:
    with pytest.raises(RouterError, match="refused"):
        router.remove_server(haproxy.backend_name(0), "no-such-server")


def test_without_a_router_the_api_says_so(tmp_path: Path) -> None:
    api = RuntimeAPI(tmp_path / "nothing.sock")

    assert not api.available()
    with pytest.raises(RouterError, match="is `shipyard router`"):
        api.command("show info")
