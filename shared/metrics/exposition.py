"""The Prometheus text of a scrape: the API's `/metrics`, and a worker host's own port."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, start_http_server
from sqlmodel import Session

from shipyard.shared.metrics.multiprocess import host_registry
from shipyard.shared.metrics.store import BrokerProbe, StoreCollector

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST


def scrape(*, session: Session, broker: BrokerProbe | None, metrics_dir: Path) -> bytes:
    """The store's gauges and what this host's worker processes recorded, as Prometheus text."""
    registry = host_registry(metrics_dir)
    registry.register(StoreCollector(session, broker))
    return generate_latest(registry)


class HostMetricsServer:
    """This host's worker metrics on a port of their own (`shipyard worker --metrics-port`)."""

    def __init__(self, *, host: str, port: int, metrics_dir: Path) -> None:
        server, thread = start_http_server(port, addr=host, registry=host_registry(metrics_dir))
        self._server = server
        self._thread: threading.Thread = thread
        self.port = int(server.server_address[1])

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
