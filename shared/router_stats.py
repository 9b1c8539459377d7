"""The routers' per-server counters, on the broker: what a canary's analysis reads.

Each run host's router publishes, every ROUTER_STATS_SECONDS, the cumulative counters of the
servers of each backend it has (from HAProxy's `show stat`, and response times from its request
log) in one hash per backend slot, one field per host. A reader sums every host's servers, so a
release spread over several run hosts is judged on all of its traffic. Counters are cumulative
since HAProxy started or the server was added: a window's figures are the difference of two
readings (ServerCounters.since), which never goes negative across a restart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import redis

from shipyard.shared import constants

# A router that has not published for this long is taken for stopped.
ALIVE_SECONDS: Final = 10
# Upper bounds (ms) of the response-time buckets; one more bucket takes everything slower.
LATENCY_BUCKETS_MS: Final = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


@dataclass(frozen=True)
class ServerCounters:
    """One server's traffic so far."""

    responses: int = 0  # HTTP responses of any status (hrsp_1xx … hrsp_other)
    server_errors: int = 0  # of which 5xx (hrsp_5xx)
    # Requests it got no response from: connection and response errors, and those sent to
    # another server after it failed them (econ + eresp + wredis: router.runtime's counters).
    failed: int = 0
    # Responses per LATENCY_BUCKETS_MS bucket (and one slower), timed by the request log: a
    # sample (a line the log could not take is not counted), enough for a percentile.
    latency: tuple[int, ...] = field(default=(0,) * (len(LATENCY_BUCKETS_MS) + 1))

    def since(self, earlier: ServerCounters | None) -> ServerCounters:
        """The traffic between `earlier` and this reading. HAProxy's counters and the request
        log's times come from two places, each reset on its own (HAProxy restarted, the server
        added again; the router agent restarted): if any counter of one of them is lower than
        before, all of that one's reading is new, every counter of it together."""
        if earlier is None:
            return self
        counted = (self.responses, self.server_errors, self.failed)
        counted_before = (earlier.responses, earlier.server_errors, earlier.failed)
        if any(now < then for now, then in zip(counted, counted_before, strict=True)):
            counted_before = (0, 0, 0)
        latency_before = earlier.latency
        if len(self.latency) != len(latency_before) or any(
            now < then for now, then in zip(self.latency, latency_before, strict=True)
        ):
            latency_before = (0,) * len(self.latency)
        return ServerCounters(
            responses=self.responses - counted_before[0],
            server_errors=self.server_errors - counted_before[1],
            failed=self.failed - counted_before[2],
            latency=tuple(a - b for a, b in zip(self.latency, latency_before, strict=True)),
        )

    def plus(self, other: ServerCounters) -> ServerCounters:
        """Both servers' traffic together."""
        return ServerCounters(
            responses=self.responses + other.responses,
            server_errors=self.server_errors + other.server_errors,
            failed=self.failed + other.failed,
            latency=tuple(a + b for a, b in zip(self.latency, other.latency, strict=True)),
        )

    def encode(self) -> list[object]:
        return [self.responses, self.server_errors, self.failed, list(self.latency)]

    @classmethod
    def decode(cls, value: list[object]) -> ServerCounters:
        responses, server_errors, failed, latency = value
        buckets = tuple(int(n) for n in latency)  # type: ignore[attr-defined]
        if len(buckets) != len(LATENCY_BUCKETS_MS) + 1:  # published with other buckets
            buckets = (0,) * (len(LATENCY_BUCKETS_MS) + 1)
        return cls(int(responses), int(server_errors), int(failed), buckets)  # type: ignore[call-overload]


def stats_key(namespace: str, slot: int) -> str:
    """The hash of one backend slot's counters: one field per run host."""
    return f"{namespace}:router-stats:{slot}"


def publish(
    client: redis.Redis,
    namespace: str,
    host: str,
    stats: Mapping[int, Mapping[str, ServerCounters]],
) -> None:
    """This host's counters, by slot then server, in one round trip, and its heartbeat (a
    reader tells a router with nothing new from one that publishes nothing any more)."""
    now = time.time()
    pipe = client.pipeline(transaction=False)
    pipe.set(alive_key(namespace, host), now, ex=ALIVE_SECONDS)
    for slot, servers in stats.items():
        key = stats_key(namespace, slot)
        value = {"at": now, "servers": {name: c.encode() for name, c in servers.items()}}
        pipe.hset(key, host, json.dumps(value, separators=(",", ":")))
        pipe.expire(key, constants.ROUTER_STATS_TTL_SECONDS)
    pipe.execute()


def alive_key(namespace: str, host: str) -> str:
    """A run host's router's heartbeat: set at each publication, gone ALIVE_SECONDS after."""
    return f"{namespace}:router-stats-alive:{host}"


class CountersUnavailable(Exception):
    """A router whose counters a reader needs publishes none (stopped, or cut off)."""


def check_alive(client: redis.Redis, namespace: str, hosts: Sequence[str]) -> None:
    """Raise CountersUnavailable unless the routers of every one of `hosts` publish."""
    if not hosts:
        return
    beats = client.mget([alive_key(namespace, host) for host in hosts])
    silent = [host for host, beat in zip(hosts, beats, strict=True) if beat is None]
    if silent:
        raise CountersUnavailable(
            f"the router of run host {', '.join(silent)} publishes no counters "
            f"(is `shipyard router` running there?)"
        )


def read(client: redis.Redis, namespace: str, slot: int) -> dict[str, ServerCounters]:
    """Every run host's servers of the slot, by name (a server's name is unique across hosts)."""
    found: dict[str, ServerCounters] = {}
    for raw in client.hgetall(stats_key(namespace, slot)).values():
        try:
            servers = json.loads(raw)["servers"]
            decoded = {name: ServerCounters.decode(value) for name, value in servers.items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a field written by another version: left out, all of it
        for name, counters in decoded.items():
            found[name] = found[name].plus(counters) if name in found else counters
    return found
