"""Traffic for one environment on this host's router: new processes in, old ones drained out.

The run stage calls it around the health-gated switch: the new release's `web` processes become
servers of the environment's backend, the old ones are set to drain (no new requests; those in
flight finish), and are taken out once HAProxy counts no connection to them, or at the
environment's drain timeout. Only then are the old processes stopped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from shipyard.router.runtime import RouterError, RuntimeAPI
from shipyard.shared.metrics import instruments
from shipyard.shared.process_record import ProcessRecord

log = structlog.get_logger(__name__)

# How often the drain looks at the old servers' connection counts.
DRAIN_POLL_SECONDS = 0.05


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


@dataclass
class Traffic:
    """One switch of one environment on this host's router."""

    api: RuntimeAPI
    map_path: Path
    route: Route
    drained_in: float | None = field(default=None, init=False)

    def serve(self, processes: Iterable[ProcessRecord]) -> None:
        """Make the processes servers of the backend and the host names point to it."""
        present = self.api.servers(self.route.backend)
        for process in web_servers(processes):
            if server_name(process) not in present:
                self.api.add_server(
                    self.route.backend, server_name(process), "127.0.0.1", int(process["port"])
                )
        for host in self.route.hosts:
            self.api.set_route(self.map_path, host, self.route.backend)

    def retire(self, processes: Iterable[ProcessRecord]) -> None:
        """Drain the processes' servers, then take them out (at the drain timeout at the latest)."""
        names = {server_name(p) for p in web_servers(processes)}
        present = self.api.servers(self.route.backend)
        draining = names & set(present)
        for name in draining:
            self.api.drain_server(self.route.backend, name)
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
