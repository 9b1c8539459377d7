"""The runtime API's servers against a real HAProxy: their weights, and the counters a canary's
analysis reads (what HAProxy counts on a server, with the config's retries and redispatch)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.router import haproxy
from shipyard.router.runtime import RouterError, RuntimeAPI
from shipyard.shared.router_stats import ServerCounters
from shipyard.shared.settings import Settings
from tests.integration.stack import free_port
from tests.router.test_router import Backend, client, started

pytestmark = pytest.mark.network

BACKEND = haproxy.backend_name(0)
ALONE = haproxy.backend_name(1)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", router_port=free_port(), router_slots=4)


@pytest.fixture
def router(settings: Settings) -> Iterator[RuntimeAPI]:
    with started(settings) as api:
        api.set_route(settings.router_map, "staging.web.localhost", BACKEND)
        api.set_route(settings.router_map, "alone.web.localhost", ALONE)
        yield api


@pytest.fixture
def apps() -> Iterator[dict[str, Backend]]:
    made = {"ok": Backend("ok"), "failing": Backend("failing", status=500)}
    yield made
    for backend in made.values():
        backend.close()


def raw_stat(router: RuntimeAPI, backend: str, server: str) -> dict[str, str]:
    """One row of `show stat`, as HAProxy words it."""
    header, _, body = router.command("show stat").lstrip("# ").partition("\n")
    for row in csv.DictReader([header, *body.splitlines()]):
        if (row["pxname"], row["svname"]) == (backend, server):
            return row
    raise AssertionError(f"no row for {backend}/{server}")


def test_a_weight_is_set_and_read_back(router: RuntimeAPI, apps: dict[str, Backend]) -> None:
    router.add_server(BACKEND, "ok", "127.0.0.1", apps["ok"].port)
    router.add_server(BACKEND, "idle", "127.0.0.1", apps["failing"].port, weight=0)

    router.set_weight(BACKEND, "ok", 7)

    servers = router.servers(BACKEND)
    assert (servers["ok"].weight, servers["idle"].weight) == (7, 0)
    assert servers["idle"].status != "MAINT"  # enabled, and taking no request
    with pytest.raises(RouterError, match="between 0 and 256"):
        router.set_weight(BACKEND, "ok", 300)


def test_a_500_an_app_answers_counts_on_its_server(
    router: RuntimeAPI, settings: Settings, apps: dict[str, Backend]
) -> None:
    for name, app in apps.items():
        router.add_server(BACKEND, name, "127.0.0.1", app.port)

    with client(settings) as http:
        statuses = [http.get("/").status_code for _ in range(20)]

    assert sorted(statuses) == [200] * 10 + [500] * 10
    counters = router.counters()
    assert counters[BACKEND] == {
        "ok": ServerCounters(responses=10, server_errors=0, failed=0),
        "failing": ServerCounters(responses=10, server_errors=10, failed=0),
    }
    # Servers only: no backend's or frontend's totals, and the latency left to the request log.
    assert set(counters[haproxy.ACME_CHALLENGE_BACKEND]) == {"responder"}
    assert not any(name in ("BACKEND", "FRONTEND") for s in counters.values() for name in s)


def test_a_refused_connection_counts_as_failed_on_the_server_that_refused(
    router: RuntimeAPI, settings: Settings, apps: dict[str, Backend]
) -> None:
    router.add_server(BACKEND, "ok", "127.0.0.1", apps["ok"].port)
    router.add_server(BACKEND, "dead", "127.0.0.1", free_port())  # nothing listens there

    with client(settings) as http:
        statuses = [http.get("/").status_code for _ in range(20)]

    # Each request the dead server got was sent again, at once, to the other; and roundrobin
    # gives the dead one the next request again (the redispatch took the other's turn).
    assert statuses == [200] * 20
    counters = router.counters()[BACKEND]
    assert counters["ok"] == ServerCounters(responses=20, server_errors=0, failed=0)
    assert counters["dead"].responses == 0 and counters["dead"].failed >= 10
    # HAProxy counts a redispatch, never a connection error: hence econ + eresp + wredis.
    dead = raw_stat(router, BACKEND, "dead")
    assert (dead["econ"], dead["eresp"]) == ("0", "0")
    assert int(dead["wredis"]) == counters["dead"].failed


def test_a_request_whose_every_try_failed_counts_once(
    router: RuntimeAPI, settings: Settings
) -> None:
    router.add_server(ALONE, "dead", "127.0.0.1", free_port())

    with client(settings, host="alone.web.localhost") as http:
        status = http.get("/").status_code  # three seconds: a second between retries

    # The router's own 503, after three retries on the same server: one connection error.
    assert status == 503
    assert router.counters()[ALONE]["dead"] == ServerCounters(failed=1)
    dead = raw_stat(router, ALONE, "dead")
    assert (dead["econ"], dead["wretr"], dead["hrsp_5xx"]) == ("1", "3", "0")
