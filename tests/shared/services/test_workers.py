"""Worker liveness keys in Redis (fakeredis): written, refreshed, expired, listed, removed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import fakeredis
import pytest
import redis
from structlog.testing import capture_logs

from shipyard.shared.exceptions import ServiceUnavailable
from shipyard.shared.services import workers

NAMESPACE = "shipyard"


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def client(server: fakeredis.FakeServer) -> Iterator[fakeredis.FakeRedis]:
    client = fakeredis.FakeRedis(server=server)
    yield client
    client.close()


@pytest.fixture
def heartbeat(server: fakeredis.FakeServer) -> Iterator[workers.Heartbeat]:
    """A heartbeat of `build@host` on build and notify, refreshed every 10 ms; stopped after."""
    beat = workers.Heartbeat(
        redis_client=fakeredis.FakeRedis(server=server),
        namespace=NAMESPACE,
        queues=["build", "notify"],
        hostname="build@host",
        interval=0.01,
    )
    yield beat
    beat.stop()


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def _live(client: redis.Redis) -> workers.LiveWorkers:
    return workers.live_workers(redis_client=client, namespace=NAMESPACE)


def test_a_recorded_heartbeat_makes_the_worker_live_on_each_of_its_queues(
    client: fakeredis.FakeRedis,
) -> None:
    workers.record_heartbeat(
        redis_client=client, namespace=NAMESPACE, queues=["build", "notify"], hostname="w@a"
    )

    assert _live(client) == {"build": ["w@a"], "notify": ["w@a"]}


def test_live_workers_are_listed_per_queue_sorted_and_other_keys_are_ignored(
    client: fakeredis.FakeRedis,
) -> None:
    for hostname in ("run@b", "run@a"):
        workers.record_heartbeat(
            redis_client=client, namespace=NAMESPACE, queues=["run"], hostname=hostname
        )
    workers.record_heartbeat(
        redis_client=client, namespace="other", queues=["build"], hostname="build@x"
    )
    client.rpush(f"{NAMESPACE}:build", "a queued message")  # kombu's own keys share the prefix
    client.set(f"{NAMESPACE}:unacked_index", "0")

    assert _live(client) == {"run": ["run@a", "run@b"]}


def test_a_hostname_with_a_colon_is_kept_whole(client: fakeredis.FakeRedis) -> None:
    workers.record_heartbeat(
        redis_client=client, namespace=NAMESPACE, queues=["release"], hostname="release@h:1"
    )

    assert _live(client) == {"release": ["release@h:1"]}


def test_a_namespace_with_glob_characters_matches_only_itself(
    client: fakeredis.FakeRedis,
) -> None:
    workers.record_heartbeat(redis_client=client, namespace="a*", queues=["run"], hostname="r@1")
    workers.record_heartbeat(redis_client=client, namespace="ab", queues=["run"], hostname="r@2")

    assert workers.live_workers(redis_client=client, namespace="a*") == {"run": ["r@1"]}


def test_a_heartbeat_key_lives_for_its_ttl_so_a_killed_worker_drops_out(
    client: fakeredis.FakeRedis,
) -> None:
    workers.record_heartbeat(
        redis_client=client, namespace=NAMESPACE, queues=["build"], hostname="build@a", ttl=15
    )

    ttl = client.ttl(workers.heartbeat_key(namespace=NAMESPACE, queue="build", hostname="build@a"))
    assert 0 < ttl <= 15


def test_forget_worker_removes_its_keys_at_once(client: fakeredis.FakeRedis) -> None:
    for hostname in ("build@a", "build@b"):
        workers.record_heartbeat(
            redis_client=client, namespace=NAMESPACE, queues=["build"], hostname=hostname
        )

    workers.forget_worker(
        redis_client=client, namespace=NAMESPACE, queues=["build"], hostname="build@a"
    )

    assert _live(client) == {"build": ["build@b"]}


def test_the_heartbeat_refreshes_its_keys_until_stopped_then_removes_them(
    client: fakeredis.FakeRedis, heartbeat: workers.Heartbeat
) -> None:
    heartbeat.start()
    _wait_for(lambda: _live(client) == {"build": ["build@host"], "notify": ["build@host"]}, "keys")
    client.flushall()  # as if they had expired: the next refresh writes them again
    _wait_for(lambda: _live(client) == {"build": ["build@host"], "notify": ["build@host"]}, "again")

    heartbeat.stop()

    assert _live(client) == {}
    assert not any(t.name == "shipyard-heartbeat-build@host" for t in threading.enumerate())


def test_the_heartbeat_outlives_a_broker_outage_and_announces_the_worker_when_it_is_back(
    server: fakeredis.FakeServer, client: fakeredis.FakeRedis, heartbeat: workers.Heartbeat
) -> None:
    server.connected = False
    with capture_logs() as logs:
        heartbeat.start()
        _wait_for(
            lambda: any(log["event"] == "worker.heartbeat_failed" for log in logs), "a failure"
        )
    server.connected = True

    _wait_for(lambda: _live(client) == {"build": ["build@host"], "notify": ["build@host"]}, "keys")


def test_worker_pools_names_every_queue_with_its_live_workers() -> None:
    pools = workers.worker_pools(probe=lambda: {"build": ["build@a"], "retired": ["x@y"]})

    assert [(pool.queue, pool.workers) for pool in pools] == [
        ("build", ["build@a"]),
        ("release", []),
        ("run", []),
        ("notify", []),
    ]


def test_a_broker_that_cannot_be_asked_is_service_unavailable() -> None:
    def broker_away() -> workers.LiveWorkers:
        raise redis.ConnectionError("Connection refused")

    with pytest.raises(ServiceUnavailable, match="cannot ask the broker which workers are alive"):
        workers.worker_pools(probe=broker_away)
