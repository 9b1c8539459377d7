"""Traffic on a stable URL for integration tests: a client of the router, and a load generator
of a few keep-alive clients that records every answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx


def router_client(url: str, timeout: float = 30) -> httpx.Client:
    """A client of an environment's stable URL: to the router on loopback, with the host name
    in the Host header (curl and browsers resolve `*.localhost` by themselves; glibc may not)."""
    parsed = httpx.URL(url)
    return httpx.Client(
        base_url=f"http://127.0.0.1:{parsed.port}",
        headers={"Host": f"{parsed.host}:{parsed.port}"},
        trust_env=False,
        timeout=timeout,
    )


@dataclass
class Load:
    """A few keep-alive clients on the stable URL until stopped; every answer is recorded."""

    url: str
    clients: int = 4
    # How each client connects (the router's HTTP port by default; an HTTPS one in test_https).
    connect: Callable[[str], httpx.Client] | None = None
    answers: list[tuple[float, float, int, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for _ in range(self.clients):
            thread = threading.Thread(target=self._client, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _client(self) -> None:
        deadline = time.monotonic() + 300  # a bound of its own, whatever the test does
        with (self.connect or router_client)(self.url) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                began = time.time()
                try:
                    response = client.get("/")
                    self.answers.append((began, time.time(), response.status_code, response.text))
                except httpx.HTTPError as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=40)
