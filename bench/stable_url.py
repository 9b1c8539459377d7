"""Clients of an environment's stable URL: keep-alive load that counts failed requests, a probe
that reads what the URL serves now, and a connection that times one GET at a time.

They connect to 127.0.0.1 on the router's port and name the environment in the Host header, as
a browser does for `http://ENV.APP.localhost:PORT` (glibc here does not resolve `*.localhost`).
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

import httpx

# Between two requests of one load client: four clients then send a few hundred requests/s
# through every switch without taking the two cores away from the stack under test.
LOAD_PAUSE_SECONDS = 0.01
# A load client stops by itself after this long, whatever its caller does.
LOAD_MAX_SECONDS = 900.0
# Failed requests whose description is kept for the error message (all are counted).
KEPT_FAILURES = 20


@dataclass(frozen=True)
class StableURL:
    """An environment's stable URL (`http://ENV.APP.localhost:PORT`): where to connect, what
    Host to send."""

    url: str

    @property
    def port(self) -> int:
        return int(httpx.URL(self.url).port or 80)

    @property
    def host_header(self) -> str:
        parsed = httpx.URL(self.url)
        return f"{parsed.host}:{self.port}"

    def client(self, timeout: float = 30) -> httpx.Client:
        """A keep-alive client of the URL."""
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Host": self.host_header},
            trust_env=False,
            timeout=timeout,
        )


@dataclass
class Load:
    """`clients` keep-alive clients GET the stable URL until the block ends; a request fails
    on a connection error or a non-2xx answer."""

    target: StableURL
    clients: int
    requests: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)  # the first few, described
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for number in range(self.clients):
            thread = threading.Thread(target=self._client, name=f"load-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=40)

    def _client(self) -> None:
        deadline = time.monotonic() + LOAD_MAX_SECONDS
        with self.target.client() as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                problem = None
                try:
                    response = client.get("/")
                    if not response.is_success:
                        problem = f"{response.status_code} {response.text[:200]!r}"
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                self._count(problem)
                self._stop.wait(LOAD_PAUSE_SECONDS)

    def _count(self, problem: str | None) -> None:
        with self._lock:
            self.requests += 1
            if problem is not None:
                self.failed += 1
                if len(self.failures) < KEPT_FAILURES:
                    self.failures.append(problem)


class Probe:
    """One keep-alive client of the stable URL that reads the body it serves now; its failed
    requests are counted like the load's."""

    def __init__(self, target: StableURL, path: str = "/") -> None:
        self._client = target.client(timeout=10)
        self._path = path
        self.requests = 0
        self.failed = 0
        self.failures: list[str] = []

    def body(self) -> str:
        """What the URL answers now; "" if the request failed."""
        self.requests += 1
        try:
            response = self._client.get(self._path)
            if response.is_success:
                return response.text
            problem = f"{response.status_code} {response.text[:200]!r}"
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        self.failed += 1
        if len(self.failures) < KEPT_FAILURES:
            self.failures.append(problem)
        return ""

    def close(self) -> None:
        self._client.close()


class TimedGet:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:`port`: the wall time of each `GET /`.

    http.client rather than httpx: the less the client spends per request, the less its own
    noise hides the difference between two paths.
    """

    def __init__(self, port: int, host_header: str | None = None) -> None:
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self._headers = {"Host": host_header} if host_header else {}

    def __call__(self) -> float:
        started = time.perf_counter()
        self._connection.request("GET", "/", headers=self._headers)
        response = self._connection.getresponse()
        response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"GET / on port {self._connection.port}: {response.status}")
        return elapsed

    def close(self) -> None:
        self._connection.close()
