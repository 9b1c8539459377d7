"""Traffic for one environment on this host's router: new processes in, old ones drained out.

The run stage calls it around the health-gated switch: the new release's `web` processes become
servers of the environment's backend, the old ones are set to drain (no new requests; those in
flight finish), and are taken out once HAProxy counts no connection to them, or at the
environment's drain timeout. Only then are the old processes stopped.

A canary splits the traffic before the switch: both releases' servers in the backend, weighted so
that the new one gets a share of the requests. `balance roundrobin` follows the weights exactly
(measured: 10.00 % of 2,000 requests for 1 against 9), once its round has settled: after the
weights change, the round under way (HAProxy's lb_fwrr) ends first, and it lasts up to 16
requests per unit of the backend's total weight then. Small weights keep that short; a canary
with large ones (1 % is 1 against 99) can leave the next split off for a few thousand requests.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import structlog

from shipyard.router.runtime import (
    DEFAULT_WEIGHT,
    MAX_WEIGHT,
    RouterError,
    RuntimeAPI,
    ServerState,
)
from shipyard.shared.metrics import instruments
from shipyard.shared.process_record import ProcessRecord

log = structlog.get_logger(__name__)

# How often the drain looks at the old servers' connection counts.
DRAIN_POLL_SECONDS = 0.05
# The status of a server added and not yet enabled (`show stat`).
MAINTENANCE = "MAINT"
DRAINING = "DRAIN"


@dataclass(frozen=True)
class Route:
    """Where an environment's traffic goes on a router: its backend and its host names."""

    backend: str
    hosts: tuple[str, ...]
    drain_timeout: float
    # Whose route it is, for the drain-time metric's labels.
    app: str = ""
    environment: str = ""


def server_name(process: ProcessRecord) -> str:
    """The HAProxy server of a process: its deployment, type and index, e.g. `3fa85f64-web-1`."""
    return str(process["server"])


def web_servers(processes: Iterable[ProcessRecord]) -> list[ProcessRecord]:
    """The processes that take HTTP traffic: `web` ones with a port."""
    return [p for p in processes if p.get("type") == "web" and p.get("port") and p.get("server")]


def weights_for(share: int, new_count: int, old_count: int) -> tuple[int, int]:
    """The weight of each new server and of each old one so that the new ones together get
    `share` percent of the requests: the smallest weights (up to HAProxy's 256) that give it
    exactly, or else as closely as they can. Both are at least 1 between 0 and 100 %; with no
    old server the new ones take everything (1, 0), with no new one the old ones (0, 1)."""
    if not 0 <= share <= 100:
        raise ValueError(f"a share is a percentage from 0 to 100, not {share}")
    if old_count == 0:
        return DEFAULT_WEIGHT, 0
    if new_count == 0 or share == 0:
        return 0, DEFAULT_WEIGHT
    if share == 100:
        return DEFAULT_WEIGHT, 0
    wanted = Fraction(share, 100)
    # new weight / old weight, for the share exactly
    ratio = Fraction(share * old_count, (100 - share) * new_count)
    if ratio.numerator <= MAX_WEIGHT and ratio.denominator <= MAX_WEIGHT:
        return ratio.numerator, ratio.denominator
    candidates = {
        (new, max(1, min(MAX_WEIGHT, old)))
        for new in range(1, MAX_WEIGHT + 1)
        for old in (int(new / ratio), int(new / ratio) + 1)
    }

    def miss(weights: tuple[int, int]) -> tuple[Fraction, int]:
        new, old = weights
        got = Fraction(new * new_count, new * new_count + old * old_count)
        return abs(got - wanted), new + old

    return min(candidates, key=miss)


@dataclass
class Traffic:
    """One switch of one environment on this host's router."""

    api: RuntimeAPI
    map_path: Path
    route: Route
    drained_in: float | None = field(default=None, init=False)

    def serve(self, processes: Iterable[ProcessRecord]) -> None:
        """Make the processes servers of the backend at the default weight (a canary's servers,
        weighted by `split`, back to it), and the host names point to it."""
        served = {server_name(p): p for p in web_servers(processes)}
        present = self.api.servers(self.route.backend)
        self._weigh(dict.fromkeys(served, DEFAULT_WEIGHT), served, present)
        for host in self.route.hosts:
            self.api.set_route(self.map_path, host, self.route.backend)

    def split(
        self, new: Iterable[ProcessRecord], old: Iterable[ProcessRecord], share: int
    ) -> tuple[int, int]:
        """Send `share` percent of the requests to the new processes' servers (added if missing,
        at their weight before their first request) and the rest to the old ones present, by
        weights (weights_for); the weights given to each new and each old server. Made again
        as often as asked: only a weight that differs is set, and a new server the router lost
        (HAProxy restarted) is added again. Share 0, then `retire` of the new processes, puts
        the old release back as it was."""
        added = {server_name(p): p for p in web_servers(new)}
        old_names = {server_name(p) for p in web_servers(old)} - set(added)
        present = self.api.servers(self.route.backend)
        serving = old_names & set(present)
        new_weight, old_weight = weights_for(share, len(added), len(serving))
        weights = dict.fromkeys(added, new_weight) | dict.fromkeys(serving, old_weight)
        self._weigh(weights, added, present)
        routed = self.api.routes(self.map_path)
        for host in self.route.hosts:
            if routed.get(host) != self.route.backend:
                self.api.set_route(self.map_path, host, self.route.backend)
        return new_weight, old_weight

    def _weigh(
        self,
        weights: Mapping[str, int],
        processes: Mapping[str, ProcessRecord],
        present: Mapping[str, ServerState],
    ) -> None:
        """Give each server its weight: one missing is added (one of `processes`), one left in
        maintenance (added, not enabled) is enabled, one draining that gets some traffic again
        is made ready, and only a weight that differs is set.

        In this order: the servers present that keep some traffic, then those added, then
        those present that take none any more. So the backend never has all its servers at 0
        on the way; and a server is added once the others have their weights: HAProxy places
        a server it adds one turn ahead by the total weight then, where one added before the
        others' rise could wait for the round under way to end (measured: no request to a
        1 % canary for its first 2,400)."""
        backend = self.route.backend

        def order(item: tuple[str, int]) -> int:
            name, weight = item
            return 1 if name not in present else (0 if weight > 0 else 2)

        for name, weight in sorted(weights.items(), key=order):
            state = present.get(name)
            if state is None:
                port = int(processes[name]["port"])
                self.api.add_server(backend, name, "127.0.0.1", port, weight=weight)
            elif state.status == MAINTENANCE:
                # `show stat` shows a server in maintenance at weight 1, whatever it was given.
                self.api.set_weight(backend, name, weight)
                self.api.enable_server(backend, name)
            else:
                if state.weight != weight:
                    self.api.set_weight(backend, name, weight)
                if state.status == DRAINING and weight > 0:  # drained once, served again
                    self.api.ready_server(backend, name)

    def unsplit(self, new: Iterable[ProcessRecord], old: Iterable[ProcessRecord]) -> bool:
        """Undo `split`, if the router has any of the new processes' servers: the old ones
        present back to their full share, then the new ones drained out; whether it had any."""
        new = list(new)
        names = {server_name(p) for p in web_servers(new)}
        if not names & set(self.api.servers(self.route.backend)):
            return False
        self.split(new, old, 0)
        self.retire(new)
        return True

    def drain(self, processes: Iterable[ProcessRecord]) -> set[str]:
        """The processes' servers take no new request from now on (those in flight finish);
        the names of those present."""
        names = {server_name(p) for p in web_servers(processes)}
        draining = names & set(self.api.servers(self.route.backend))
        for name in draining:
            self.api.drain_server(self.route.backend, name)
        return draining

    def retire(self, processes: Iterable[ProcessRecord]) -> None:
        """Drain the processes' servers, then take them out (at the drain timeout at the latest)."""
        draining = self.drain(processes)
        started = time.monotonic()
        deadline = started + self.route.drain_timeout
        outcome = "drained"
        while draining and time.monotonic() < deadline:
            servers = self.api.servers(self.route.backend)
            if all(servers[name].sessions == 0 for name in draining if name in servers):
                break
            time.sleep(DRAIN_POLL_SECONDS)
        else:
            if draining:
                outcome = "timeout"
                log.warning("router.drain_timeout", timeout=self.route.drain_timeout)
        self.drained_in = time.monotonic() - started
        if draining:
            instruments.DRAIN_DURATION.labels(
                app=self.route.app, environment=self.route.environment, outcome=outcome
            ).observe(self.drained_in)
        for name in draining:
            try:
                self.api.remove_server(self.route.backend, name)
            except RouterError as exc:
                log.warning("router.remove_failed", server=name, error=exc.message)
