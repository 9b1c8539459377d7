"""The router agent's publisher of this host's per-server counters on the broker
(shared.router_stats), what a canary's analysis compares: HAProxy's counts for each server of
the environments' backends (router.runtime.RuntimeAPI.counters), with the response times the
request log reader took, every ROUTER_STATS_SECONDS on a thread of its own.

A slot is published when its counters changed, and at least every half of their time to live:
they stay while the router runs, and expire once it stops. Counters are never worth stopping the
router for: with the broker or HAProxy away, a publication is skipped (and said so once).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Protocol

import redis
import structlog

from shipyard.router import haproxy
from shipyard.router.runtime import RuntimeAPI
from shipyard.shared import constants, router_stats
from shipyard.shared.router_stats import ServerCounters

log = structlog.get_logger(__name__)

# A slot whose counters did not change is published again after this long, well within their
# time to live on the broker.
REFRESH_SECONDS = constants.ROUTER_STATS_TTL_SECONDS / 2

SlotStats = dict[int, dict[str, ServerCounters]]


class ResponseTimeSource(Protocol):
    """Each server's responses per response-time bucket (serve.router_log_reader)."""

    def latency(self) -> dict[str, dict[str, tuple[int, ...]]]: ...

    def keep_only(self, present: Mapping[str, Collection[str]]) -> None: ...


class StatsPublisher:
    """Publishes this host's counters as host `host`, every ROUTER_STATS_SECONDS between `start`
    and `stop` (or once per `publish`)."""

    def __init__(
        self,
        *,
        api: RuntimeAPI,
        response_times: ResponseTimeSource,
        client: redis.Redis,
        namespace: str,
        host: str,
    ) -> None:
        self.api = api
        self.response_times = response_times
        self.client = client
        self.namespace = namespace
        self.host = host
        # What the broker holds of this host: each slot's counters, and when they were sent.
        self.published: SlotStats = {}
        self._published_at: dict[int, float] = {}
        self._failing = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Publish on a thread of its own: a broker slow to answer never holds up the agent's
        watch over HAProxy."""
        self._thread = threading.Thread(target=self._run, name="router-stats", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop publishing (one under way ends first); close the client."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.client.close()

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stopping.wait(max(due - time.monotonic(), 0)):
            self.publish()
            # Every ROUTER_STATS_SECONDS, not that long after each: unless it fell behind.
            due = max(due + constants.ROUTER_STATS_SECONDS, time.monotonic())

    def publish(self) -> list[int]:
        """Publish the slots whose counters changed (or were last published REFRESH_SECONDS
        ago), and an empty one for a slot whose servers are all gone: the slots published."""
        try:
            stats = self.read()
            due = self._due(stats, time.monotonic())
            router_stats.publish(self.client, self.namespace, self.host, due)
        except Exception as exc:  # the broker or HAProxy away: the next publication will do
            if not self._failing:
                log.warning("router_stats.unavailable", error=f"{type(exc).__name__}: {exc}")
            self._failing = True
            return []
        if self._failing:
            log.info("router_stats.back")
        self._failing = False
        now = time.monotonic()
        for slot, servers in due.items():
            if servers:
                self.published[slot], self._published_at[slot] = servers, now
            else:
                self.published.pop(slot, None)
                self._published_at.pop(slot, None)
        return sorted(due)

    def read(self) -> SlotStats:
        """This router's counters now, by slot then server, response times filled in."""
        counters = self.api.counters()
        self.response_times.keep_only(counters)  # the servers gone: forgotten
        latency = self.response_times.latency()
        stats: SlotStats = {}
        for backend, servers in counters.items():
            slot = haproxy.backend_slot(backend)
            if slot is None:
                continue
            timed = latency.get(backend, {})
            stats[slot] = {
                name: replace(counted, latency=timed[name]) if name in timed else counted
                for name, counted in servers.items()
            }
        return stats

    def _due(self, stats: SlotStats, now: float) -> SlotStats:
        """The slots to publish: changed, stale, or emptied since the last publication."""
        due: SlotStats = {
            slot: servers
            for slot, servers in stats.items()
            if servers != self.published.get(slot)
            or now - self._published_at[slot] >= REFRESH_SECONDS
        }
        for slot in self.published.keys() - stats.keys():
            due[slot] = {}
        return due
