"""The router agent's publisher of each server's counters: from a real HAProxy and the request
log's response times to a real Redis, only what changed, and the broker or HAProxy away said
once while the agent goes on."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from structlog.testing import capture_logs

from shipyard.router import haproxy
from shipyard.router.runtime import RuntimeAPI
from shipyard.serve import router_stats_publisher
from shipyard.serve.router_log_reader import RouterLogReader
from shipyard.serve.router_stats_publisher import StatsPublisher
from shipyard.shared import router_stats
from shipyard.shared.router_stats import ServerCounters
from shipyard.shared.settings import Settings
from tests.integration.stack import free_port
from tests.router.test_router import Backend, client, started
from tests.serve.test_router_log_reader import wait_until

pytestmark = pytest.mark.network

BACKEND = haproxy.backend_name(0)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", router_port=free_port(), router_slots=4)


@pytest.fixture
def namespace(broker_namespace: str) -> str:
    """This test's own, under the session's (whose keys are deleted at its end)."""
    return f"{broker_namespace}:{uuid.uuid4().hex[:8]}"


@pytest.fixture
def broker(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture
def reader(settings: Settings, redis_url: str, broker_namespace: str) -> Iterator[RouterLogReader]:
    """The request log's reader, bound before HAProxy starts (as the agent does)."""
    made = RouterLogReader(
        path=settings.router_log_socket,
        client=redis.Redis.from_url(redis_url),
        namespace=broker_namespace,
        load_slots=dict,
    )
    made.bind()
    made.start()
    yield made
    made.stop()


@pytest.fixture
def apps() -> Iterator[dict[str, Backend]]:
    made = {"new": Backend("new", status=500), "old": Backend("old")}
    yield made
    for backend in made.values():
        backend.close()


@pytest.fixture
def router(
    settings: Settings, reader: RouterLogReader, apps: dict[str, Backend]
) -> Iterator[RuntimeAPI]:
    """HAProxy with slot 0 served by `new` (answering 500) and `old`."""
    with started(settings) as api:
        api.set_route(settings.router_map, "staging.web.localhost", BACKEND)
        for name, app in apps.items():
            api.add_server(BACKEND, name, "127.0.0.1", app.port)
        yield api


@pytest.fixture
def make_publisher(
    router: RuntimeAPI, reader: RouterLogReader, redis_url: str, namespace: str
) -> Iterator[Callable[..., StatsPublisher]]:
    made: list[StatsPublisher] = []

    def make(host: str = "run-1", client: redis.Redis | None = None) -> StatsPublisher:
        publisher = StatsPublisher(
            api=router,
            response_times=reader.response_times,
            client=client or redis.Redis.from_url(redis_url),
            namespace=namespace,
            host=host,
        )
        made.append(publisher)
        return publisher

    yield make
    for publisher in made:
        publisher.stop()


def away() -> redis.Redis:
    """A broker that does not answer (nothing listens on its port)."""
    return redis.Redis(port=free_port(), retry=Retry(NoBackoff(), 0))


def send(settings: Settings, reader: RouterLogReader, requests: int) -> None:
    """`requests` requests through the router, once the log reader has timed them all."""
    before = _timed(reader)
    with client(settings) as http:
        for _ in range(requests):
            http.get("/")
    wait_until(lambda: _timed(reader) == before + requests, "the responses timed")


def _timed(reader: RouterLogReader) -> int:
    return sum(sum(counts) for counts in reader.latency().get(BACKEND, {}).values())


def test_this_hosts_counters_are_published_and_summed_with_other_hosts(
    make_publisher: Callable[..., StatsPublisher],
    settings: Settings,
    reader: RouterLogReader,
    broker: redis.Redis,
    namespace: str,
) -> None:
    send(settings, reader, 10)

    assert make_publisher().publish() == [0]

    published = router_stats.read(broker, namespace, 0)
    assert set(published) == {"new", "old"}
    assert (published["new"].responses, published["new"].server_errors) == (5, 5)
    assert (published["old"].responses, published["old"].server_errors) == (5, 0)
    assert [sum(counters.latency) for counters in published.values()] == [5, 5]
    assert published["old"].latency == reader.latency()[BACKEND]["old"]
    key = router_stats.stats_key(namespace, 0)
    assert 0 < broker.ttl(key) <= router_stats.constants.ROUTER_STATS_TTL_SECONDS

    # Another run host's servers of the same slot (a release spread over two hosts).
    elsewhere = ServerCounters(responses=7, server_errors=1, failed=2)
    router_stats.publish(broker, namespace, "run-2", {0: {"old": elsewhere}})
    summed = router_stats.read(broker, namespace, 0)
    assert (summed["old"].responses, summed["old"].server_errors, summed["old"].failed) == (
        12,
        1,
        2,
    )
    assert summed["new"] == published["new"]


def test_only_what_changed_is_published_again(
    make_publisher: Callable[..., StatsPublisher],
    monkeypatch: pytest.MonkeyPatch,
    router: RuntimeAPI,
    settings: Settings,
    reader: RouterLogReader,
    broker: redis.Redis,
    namespace: str,
) -> None:
    publisher = make_publisher()
    send(settings, reader, 2)
    assert publisher.publish() == [0]

    assert publisher.publish() == []  # nothing happened since
    send(settings, reader, 1)
    assert publisher.publish() == [0]
    # Published again when half their time to live has passed, changed or not.
    monkeypatch.setattr(router_stats_publisher, "REFRESH_SECONDS", 0.0)
    assert publisher.publish() == [0]
    monkeypatch.undo()

    # A slot whose servers are all gone: published empty once, then no more.
    for name in ("new", "old"):
        router.remove_server(BACKEND, name)
    assert publisher.publish() == [0]
    assert router_stats.read(broker, namespace, 0) == {}
    assert publisher.publish() == []
    assert reader.latency() == {}  # their response times forgotten too


def test_with_the_broker_or_haproxy_away_it_says_so_once_and_goes_on(
    make_publisher: Callable[..., StatsPublisher],
    settings: Settings,
    reader: RouterLogReader,
    redis_url: str,
    broker: redis.Redis,
    namespace: str,
    tmp_path: Path,
) -> None:
    publisher = make_publisher(client=away())
    send(settings, reader, 2)

    with capture_logs() as logs:
        assert [publisher.publish() for _ in range(3)] == [[], [], []]
        publisher.client = redis.Redis.from_url(redis_url)  # the broker back
        assert publisher.publish() == [0]
        publisher.api = RuntimeAPI(tmp_path / "no-haproxy.sock")  # HAProxy restarting
        assert [publisher.publish() for _ in range(2)] == [[], []]

    events = [(log["event"], log["log_level"]) for log in logs]
    assert events == [
        ("router_stats.unavailable", "warning"),
        ("router_stats.back", "info"),
        ("router_stats.unavailable", "warning"),
    ]
    assert "ConnectionError" in logs[0]["error"]
    assert "RouterError" in logs[2]["error"]
    assert router_stats.read(broker, namespace, 0)["new"].responses == 1


def test_its_thread_publishes_every_interval_through_an_outage(
    make_publisher: Callable[..., StatsPublisher],
    settings: Settings,
    reader: RouterLogReader,
    redis_url: str,
    broker: redis.Redis,
    namespace: str,
) -> None:
    publisher = make_publisher(client=away())
    send(settings, reader, 2)
    with capture_logs() as logs:
        publisher.start()
        wait_until(lambda: logs, "the broker found away")
        publisher.client = redis.Redis.from_url(redis_url)

        wait_until(lambda: router_stats.read(broker, namespace, 0), "the publication")
        send(settings, reader, 2)
        wait_until(
            lambda: router_stats.read(broker, namespace, 0)["old"].responses == 2,
            "the next publication",
        )
        publisher.stop()

    assert publisher._thread is not None and not publisher._thread.is_alive()
    assert [log["event"] for log in logs] == ["router_stats.unavailable", "router_stats.back"]


def test_requests_through_the_router_are_counted_while_it_publishes(
    make_publisher: Callable[..., StatsPublisher],
    settings: Settings,
    broker: redis.Redis,
    namespace: str,
) -> None:
    make_publisher().start()

    with httpx.Client(
        base_url=f"http://127.0.0.1:{settings.router_port}",
        headers={"Host": "staging.web.localhost"},
        trust_env=False,
    ) as http:
        statuses = sorted(http.get("/").status_code for _ in range(40))

    assert statuses == [200] * 20 + [500] * 20
    wait_until(
        lambda: sum(c.responses for c in router_stats.read(broker, namespace, 0).values()) == 40,
        "all forty published",
    )
    published = router_stats.read(broker, namespace, 0)
    assert published["new"].server_errors == 20
    wait_until(
        lambda: sum(router_stats.read(broker, namespace, 0)["new"].latency) == 20,
        "their response times published",
    )
