"""The router's lines of each environment on the broker: appended in batches, capped, read by
`logs` as a source labelled `router`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shipyard.shared import constants, router_log
from shipyard.shared.app_logs import Follower
from tests.integration.stack import free_port


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def test_each_environment_gets_its_lines_in_one_round_trip(
    client: redis.Redis, broker_namespace: str
) -> None:
    staging, production = uuid.uuid4(), uuid.uuid4()

    router_log.append(
        client, broker_namespace, {staging: ["at=info one", "at=info two"], production: ["p"]}
    )

    source = router_log.RouterLogSource(client, router_log.stream_key(broker_namespace, staging))
    assert source.tail(10) == ["at=info one", "at=info two"]
    key = router_log.stream_key(broker_namespace, production)
    assert client.xlen(key) == 1
    assert 0 < client.ttl(key) <= constants.ROUTER_LOG_TTL_SECONDS


def test_a_stream_keeps_about_its_cap_of_lines(
    client: redis.Redis, broker_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(constants, "ROUTER_LOG_MAX_LINES", 100)
    environment = uuid.uuid4()

    for batch in range(20):
        lines = [f"at=info line={batch}.{n}" for n in range(50)]
        router_log.append(client, broker_namespace, {environment: lines})

    source = router_log.RouterLogSource(
        client, router_log.stream_key(broker_namespace, environment)
    )
    # Trimmed approximately: in whole nodes of the stream (100 entries each by default).
    assert 100 <= client.xlen(source.key) <= 200
    assert source.tail(2) == ["at=info line=19.48", "at=info line=19.49"]


def test_the_source_tails_then_polls_what_came_since(
    client: redis.Redis, broker_namespace: str
) -> None:
    environment = uuid.uuid4()
    router_log.append(client, broker_namespace, {environment: ["old", "last"]})
    source = router_log.RouterLogSource(
        client, router_log.stream_key(broker_namespace, environment)
    )
    follower = Follower(secrets={"hunter2"})

    first = follower.add(source.origin, source, 1)
    router_log.append(client, broker_namespace, {environment: ['path="/reset/hunter2"']})
    new = follower.poll()

    assert first == ["router: last\n"]
    assert new == ['router: path="/reset/<redacted>"\n']
    assert follower.poll() == []


def test_no_lines_asked_still_follows_from_the_newest(
    client: redis.Redis, broker_namespace: str
) -> None:
    environment = uuid.uuid4()
    key = router_log.stream_key(broker_namespace, environment)
    router_log.append(client, broker_namespace, {environment: ["before"]})
    source = router_log.RouterLogSource(client, key)
    empty = router_log.RouterLogSource(
        client, router_log.stream_key(broker_namespace, uuid.uuid4())
    )

    assert source.tail(0) == [] and empty.tail(5) == []
    router_log.append(client, broker_namespace, {environment: ["after"]})
    assert source.poll() == ["after"]
    assert empty.poll() == []


def test_with_the_broker_away_there_are_no_router_lines() -> None:
    away = redis.Redis(port=free_port(), retry=Retry(NoBackoff(), 0))
    source = router_log.RouterLogSource(away, "shipyard:routerlog:none")

    assert source.tail(10) == []
    assert source.poll() == []
    away.close()


def test_after_a_failure_the_broker_is_left_alone_for_a_while() -> None:
    calls: list[str] = []

    class Away:
        def xrange(self, *args: object, **kwargs: object) -> object:
            calls.append("xrange")
            raise redis.ConnectionError("refused")

    source = router_log.RouterLogSource(Away(), "shipyard:routerlog:none")  # type: ignore[arg-type]

    assert [source.poll(), source.poll(), source.poll()] == [[], [], []]
    assert calls == ["xrange"]  # the two polls after the failure did not ask again
