"""The routers' per-server counters: a window's traffic between two readings (across resets),
two servers together, and their round trip through a real Redis, one field per run host."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import redis

from shipyard.shared import constants, router_stats
from shipyard.shared.router_stats import LATENCY_BUCKETS_MS, ServerCounters

BUCKETS = len(LATENCY_BUCKETS_MS) + 1


def buckets(*first: int) -> tuple[int, ...]:
    """Responses per bucket: the first buckets given, the others empty."""
    return (*first, *(0,) * (BUCKETS - len(first)))


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture
def namespace(broker_namespace: str) -> str:
    """This test's own, under the session's (whose keys are deleted at its end)."""
    return f"{broker_namespace}:{uuid.uuid4().hex[:8]}"


def test_a_window_is_the_difference_of_two_readings() -> None:
    before = ServerCounters(responses=10, server_errors=1, failed=2, latency=buckets(6, 4))
    after = ServerCounters(responses=25, server_errors=4, failed=2, latency=buckets(10, 12, 3))

    assert after.since(before) == ServerCounters(
        responses=15, server_errors=3, failed=0, latency=buckets(4, 8, 3)
    )
    assert after.since(after) == ServerCounters()
    assert after.since(None) == after  # a server not read before: all of it is new


def test_a_counter_lower_than_before_was_reset_and_counts_whole() -> None:
    # HAProxy restarted (its counters from zero) while the request log's times went on.
    before = ServerCounters(responses=100, server_errors=10, failed=5, latency=buckets(60, 40))
    after = ServerCounters(responses=8, server_errors=1, failed=0, latency=buckets(64, 44))

    assert after.since(before) == ServerCounters(
        responses=8, server_errors=1, failed=0, latency=buckets(4, 4)
    )


def test_a_reset_counts_every_counter_of_its_source_whole_not_each_on_its_own() -> None:
    # HAProxy restarted and has served more 2xx since than its 5xx before: still all new.
    before = ServerCounters(responses=100, server_errors=50, failed=0, latency=buckets(60, 40))
    after = ServerCounters(responses=120, server_errors=3, failed=0, latency=buckets(70, 45))

    assert after.since(before) == ServerCounters(
        responses=120, server_errors=3, failed=0, latency=buckets(10, 5)
    )


def test_two_servers_add_up() -> None:
    one = ServerCounters(responses=3, server_errors=1, failed=1, latency=buckets(2, 1))
    other = ServerCounters(responses=5, server_errors=0, failed=2, latency=buckets(0, 4, 1))

    assert one.plus(other) == ServerCounters(
        responses=8, server_errors=1, failed=3, latency=buckets(2, 5, 1)
    )
    assert one.plus(ServerCounters()) == one


def test_counters_published_with_other_buckets_are_read_without_times() -> None:
    counters = ServerCounters(responses=4, server_errors=1, failed=2, latency=buckets(1, 3))

    assert ServerCounters.decode(json.loads(json.dumps(counters.encode()))) == counters
    assert ServerCounters.decode([4, 1, 2, [1, 3]]) == ServerCounters(4, 1, 2)
    assert ServerCounters.decode([4, 1, 2, [0] * (BUCKETS + 1)]) == ServerCounters(4, 1, 2)


def test_each_hosts_servers_are_read_together(client: redis.Redis, namespace: str) -> None:
    web_1 = ServerCounters(responses=10, server_errors=2, failed=1, latency=buckets(7, 3))
    web_2 = ServerCounters(responses=4, latency=buckets(4))

    router_stats.publish(client, namespace, "run-1", {0: {"web-1": web_1}, 1: {"x": web_2}})
    router_stats.publish(client, namespace, "run-2", {0: {"web-2": web_2}})

    assert router_stats.read(client, namespace, 0) == {"web-1": web_1, "web-2": web_2}
    assert router_stats.read(client, namespace, 1) == {"x": web_2}
    assert router_stats.read(client, namespace, 2) == {}
    key = router_stats.stats_key(namespace, 0)
    assert set(client.hkeys(key)) == {b"run-1", b"run-2"}
    assert 0 < client.ttl(key) <= constants.ROUTER_STATS_TTL_SECONDS


def test_a_server_on_two_hosts_is_summed_and_a_host_republishing_replaces_its_own(
    client: redis.Redis, namespace: str
) -> None:
    first = ServerCounters(responses=10, latency=buckets(10))
    router_stats.publish(client, namespace, "run-1", {0: {"web-1": first}})
    router_stats.publish(client, namespace, "run-2", {0: {"web-1": first}})

    assert router_stats.read(client, namespace, 0) == {"web-1": first.plus(first)}

    later = ServerCounters(responses=15, latency=buckets(15))
    router_stats.publish(client, namespace, "run-1", {0: {"web-1": later}})
    assert router_stats.read(client, namespace, 0) == {"web-1": later.plus(first)}
    router_stats.publish(client, namespace, "run-2", {0: {}})  # its servers all gone
    assert router_stats.read(client, namespace, 0) == {"web-1": later}


def test_a_field_another_version_wrote_is_left_out(client: redis.Redis, namespace: str) -> None:
    web_1 = ServerCounters(responses=1, latency=buckets(1))
    router_stats.publish(client, namespace, "run-1", {0: {"web-1": web_1}})
    key = router_stats.stats_key(namespace, 0)
    client.hset(key, "run-2", "not json")
    client.hset(key, "run-3", json.dumps({"at": 0, "counters": {}}))
    # One server unreadable: none of that host's are read (not half its traffic).
    good = web_1.encode()
    client.hset(key, "run-4", json.dumps({"at": 0, "servers": {"web-1": good, "web-9": [1, 2]}}))
    client.hset(key, "run-5", json.dumps({"at": 0, "servers": ["web-1"]}))

    assert router_stats.read(client, namespace, 0) == {"web-1": web_1}


def test_nothing_to_publish_writes_nothing(client: redis.Redis, namespace: str) -> None:
    router_stats.publish(client, namespace, "run-1", {})

    assert not client.exists(router_stats.stats_key(namespace, 0))
