"""The router agent's reader of HAProxy's request lines: each request through a real router
becomes a line of its environment's stream on the broker; the broker or the store away, the
reader drops lines and goes on. Each server's responses are counted by time taken."""

from __future__ import annotations

import socket
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shipyard.router import haproxy, request_log
from shipyard.serve import router_log_reader
from shipyard.serve.router_log_reader import ResponseTimes, RouterLogReader, SlotMap
from shipyard.shared import router_log
from shipyard.shared.router_stats import LATENCY_BUCKETS_MS
from shipyard.shared.settings import Settings
from tests.integration.stack import free_port
from tests.router.test_router import Backend, client, started


def request_line(backend: str = "env_0000", path: str = "/") -> bytes:
    return (
        f"{backend} 3fa85f64-web-1-p4000 200 0 0 0 3 3 90 -- GET - 127.0.0.1 "
        f'"staging.web.localhost" "{path}"\n'
    ).encode()


def timed_line(
    server: str,
    *,
    backend: str = "env_0000",
    request: int = 0,
    connect: int = 0,
    active: int = 3,
    status: int = 200,
) -> bytes:
    """A request's line with its times (ms): receiving it, connecting, and the whole request."""
    return (
        f"{backend} {server} {status} {request} 0 {connect} {max(active - 1, 0)} {active} 90 -- "
        f'GET - 127.0.0.1 "staging.web.localhost" "/"\n'
    ).encode()


def histogram(**counts: int) -> tuple[int, ...]:
    """Responses per bucket, by the bucket's bound (`ms_5=1`, `slower=2`)."""
    bounds = [f"ms_{bound}" for bound in LATENCY_BUCKETS_MS] + ["slower"]
    return tuple(counts.get(bound, 0) for bound in bounds)


def wait_until(condition: Callable[[], object], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", router_port=free_port(), router_slots=4)


@pytest.fixture
def broker(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture
def environments() -> SlotMap:
    """Slot → environment: staging has slot 0, production slot 1 (new ones for each test)."""
    return {0: uuid.uuid4(), 1: uuid.uuid4()}


@pytest.fixture
def make_reader(
    settings: Settings, redis_url: str, broker_namespace: str, environments: SlotMap
) -> Iterator[Callable[..., RouterLogReader]]:
    made: list[RouterLogReader] = []

    def make(
        load_slots: Callable[[], SlotMap] = lambda: environments,
        client: redis.Redis | None = None,
    ) -> RouterLogReader:
        reader = RouterLogReader(
            path=settings.router_log_socket,
            client=client or redis.Redis.from_url(redis_url),
            namespace=broker_namespace,
            load_slots=load_slots,
        )
        reader.bind()
        reader.start()
        made.append(reader)
        return reader

    yield make
    for reader in made:
        reader.stop()


def lines(broker: redis.Redis, namespace: str, environment: uuid.UUID) -> list[str]:
    return router_log.RouterLogSource(broker, router_log.stream_key(namespace, environment)).tail(
        100
    )


def send(path: Path, *messages: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        for message in messages:
            sender.sendto(message, str(path))


def test_the_socket_is_the_users_alone_and_gone_after_stop(
    make_reader: Callable[..., RouterLogReader], settings: Settings
) -> None:
    reader = make_reader()

    mode = settings.router_log_socket.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    reader.stop()
    assert not settings.router_log_socket.exists()
    assert not reader._thread or not reader._thread.is_alive()


def test_lines_go_to_their_environments_stream_and_unknown_hosts_nowhere(
    make_reader: Callable[..., RouterLogReader],
    settings: Settings,
    broker: redis.Redis,
    broker_namespace: str,
    environments: SlotMap,
) -> None:
    staging, production = environments[0], environments[1]
    make_reader()

    send(
        settings.router_log_socket,
        request_line(path="/one"),
        request_line(backend="unknown_host", path="/nobody"),
        b"Proxy http started.\n",  # HAProxy's own messages come this way too
        request_line(backend="env_0001", path="/two"),
        request_line(backend="env_0003", path="/unowned"),  # a slot no environment has
    )

    wait_until(lambda: lines(broker, broker_namespace, production), "production's line")
    wait_until(lambda: lines(broker, broker_namespace, staging), "staging's line")
    assert [line.split()[2] for line in lines(broker, broker_namespace, staging)] == ['path="/one"']
    assert lines(broker, broker_namespace, production)[0].startswith(
        'at=info method=GET path="/two"'
    )


def test_a_slot_it_does_not_know_has_the_store_read_again(
    monkeypatch: pytest.MonkeyPatch,
    make_reader: Callable[..., RouterLogReader],
    settings: Settings,
    broker: redis.Redis,
    broker_namespace: str,
    environments: SlotMap,
) -> None:
    staging, created = environments[0], uuid.uuid4()
    maps = iter([{0: staging}, {0: staging, 2: created}])
    reads: list[SlotMap] = []

    def load_slots() -> SlotMap:
        reads.append(next(maps))
        return reads[-1]

    make_reader(load_slots)
    send(settings.router_log_socket, request_line())
    wait_until(lambda: lines(broker, broker_namespace, staging), "staging's line")
    # The store is asked again at most every 2 s; at once here.
    monkeypatch.setattr(router_log_reader, "UNKNOWN_SLOT_REFRESH_SECONDS", 0.0)

    send(settings.router_log_socket, request_line(backend="env_0002", path="/new"))

    wait_until(lambda: lines(broker, broker_namespace, created), "the new environment's line")
    assert len(reads) == 2


def test_with_the_broker_or_the_store_away_lines_are_dropped_and_reading_goes_on(
    make_reader: Callable[..., RouterLogReader],
    settings: Settings,
    broker: redis.Redis,
    broker_namespace: str,
    redis_url: str,
    environments: SlotMap,
) -> None:
    staging = environments[0]
    store_up = False

    def load_slots() -> SlotMap:
        if not store_up:
            raise OSError("the store is away")
        return {0: staging}

    away = redis.Redis(port=free_port(), retry=Retry(NoBackoff(), 0))
    reader = make_reader(load_slots, client=away)
    send(settings.router_log_socket, request_line(path="/lost"))
    wait_until(lambda: reader._loaded_at is not None, "a look at the store")
    store_up = True
    reader._loaded_at = None  # read the store again at the next line
    send(settings.router_log_socket, request_line(path="/lost-too"))
    wait_until(lambda: reader.slots, "the slot map")
    wait_until(lambda: reader._broker_down, "the broker found away")

    reader.client = redis.Redis.from_url(redis_url)  # the broker back
    send(settings.router_log_socket, request_line(path="/kept"))

    wait_until(lambda: lines(broker, broker_namespace, staging), "the line after")
    assert [line.split()[2] for line in lines(broker, broker_namespace, staging)] == [
        'path="/kept"'
    ]
    assert reader._thread is not None and reader._thread.is_alive()
    away.close()


@pytest.mark.network
def test_a_request_through_a_real_router_becomes_its_environments_line(
    make_reader: Callable[..., RouterLogReader],
    settings: Settings,
    broker: redis.Redis,
    broker_namespace: str,
    environments: SlotMap,
) -> None:
    staging, production = environments[0], environments[1]
    make_reader()  # bound before HAProxy starts, as the router agent does
    app = Backend("hello")
    try:
        with started(settings) as api:
            api.set_route(settings.router_map, "staging.web.localhost", haproxy.backend_name(0))
            api.set_route(settings.router_map, "idle.web.localhost", haproxy.backend_name(1))
            api.add_server(
                haproxy.backend_name(0), f"3fa85f64-web-1-p{app.port}", "127.0.0.1", app.port
            )
            with client(settings) as http:
                assert http.get("/hello/world?token=s3cret").text == "hello"
            with client(settings, host="idle.web.localhost") as http:
                assert http.get("/").status_code == 503
            with client(settings, host="nobody.web.localhost") as http:
                assert http.get("/").status_code == 404

            wait_until(lambda: lines(broker, broker_namespace, staging), "staging's line")
            wait_until(lambda: lines(broker, broker_namespace, production), "the idle line")
    finally:
        app.close()

    (served,) = lines(broker, broker_namespace, staging)
    assert served.startswith('at=info method=GET path="/hello/world" host=staging.web.localhost ')
    assert ' fwd="127.0.0.1" dyno=web.1 connect=' in served
    assert " status=200 bytes=" in served
    assert "s3cret" not in served and "token" not in served
    (idle,) = lines(broker, broker_namespace, production)
    assert idle.startswith('at=error reason="no process of this environment runs on this')
    assert " dyno= connect= service= status=503 " in idle


def test_each_servers_responses_are_counted_by_the_service_time_of_their_lines(
    make_reader: Callable[..., RouterLogReader],
    settings: Settings,
    broker: redis.Redis,
    broker_namespace: str,
    environments: SlotMap,
) -> None:
    reader = make_reader()
    web_1, web_2 = "3fa85f64-web-1-p4000", "3fa85f64-web-2-p4001"

    send(
        settings.router_log_socket,
        timed_line(web_1, connect=1, active=4),  # service 3 ms
        timed_line(web_1, request=2, connect=1, active=33),  # service 30 ms
        timed_line(web_1, connect=0, active=5),  # 5 ms: the first bucket holds its bound
        timed_line(web_1, connect=0, active=25_000),  # slower than the last bound
        timed_line(web_2, connect=-1, active=3000, status=503),  # no connection: not timed
        timed_line(request_log.NO_SERVER, status=503),  # no process at all
        timed_line(request_log.NO_SERVER, backend="unknown_host", status=404),
        timed_line("3fa85f64-web-1-p5000", backend="env_0001", connect=2, active=12),  # 10 ms
    )

    wait_until(lambda: len(lines(broker, broker_namespace, environments[0])) == 6, "the lines")
    wait_until(lambda: "env_0001" in reader.latency(), "production's response")
    assert reader.latency() == {
        "env_0000": {web_1: histogram(ms_5=2, ms_50=1, slower=1)},
        "env_0001": {"3fa85f64-web-1-p5000": histogram(ms_10=1)},
    }
    # The same time as the `router:` lines show.
    services = [
        line.split(" service=")[1].split()[0]
        for line in lines(broker, broker_namespace, environments[0])
    ]
    assert services[:4] == ["3ms", "30ms", "5ms", "25000ms"]


def test_servers_no_longer_present_are_forgotten() -> None:
    times = ResponseTimes()
    records = [
        request_log.parse(timed_line(server, backend=backend))
        for backend, server in [("env_0000", "a-p1"), ("env_0000", "b-p2"), ("env_0001", "c-p3")]
    ]
    times.add([record for record in records if record is not None])

    times.keep_only({"env_0000": {"a-p1"}, "env_0001": {"a-p1"}})

    copy = times.latency()
    assert copy == {"env_0000": {"a-p1": histogram(ms_5=1)}}
    copy["env_0000"].clear()  # a copy: the reader's own counts are untouched
    assert times.latency() == {"env_0000": {"a-p1": histogram(ms_5=1)}}
    times.keep_only({})
    assert times.latency() == {}


@pytest.mark.network
def test_a_response_through_a_real_router_is_timed_on_its_server(
    make_reader: Callable[..., RouterLogReader], settings: Settings
) -> None:
    reader = make_reader()
    app = Backend("hello")
    server = f"3fa85f64-web-1-p{app.port}"
    try:
        with started(settings) as api:
            api.set_route(settings.router_map, "staging.web.localhost", haproxy.backend_name(0))
            api.add_server(haproxy.backend_name(0), server, "127.0.0.1", app.port)
            with client(settings) as http:
                assert [http.get("/").status_code for _ in range(3)] == [200] * 3
                assert http.get("/slow").status_code == 200

            wait_until(
                lambda: sum(reader.latency().get("env_0000", {}).get(server, ())) == 4,
                "the four responses timed",
            )
    finally:
        app.close()

    timed = reader.latency()["env_0000"][server]
    # /slow took a second (1000 ms, or a few more): in the bucket up to 1000 ms or the next.
    second = LATENCY_BUCKETS_MS.index(1000)
    assert timed[second] + timed[second + 1] == 1
    assert sum(timed[:3]) == 3
