"""The router agent's reader of HAProxy's request log: a datagram socket in the router's folder
that HAProxy sends a line per request to (router.request_log), read by a thread that turns
each into its `router:` line and appends it, in batches, to its environment's stream on the
broker (shared.router_log), where `logs` of any host reads it.

A line is never worth stopping the router for: with the broker or the store away, lines are
dropped (and said so once), and HAProxy never waits for this reader: a datagram the socket has
no room for is dropped by the kernel.

It also times the responses of each server of the environments' backends (ResponseTimes), the
response-time half of the counters the router agent publishes for a canary's analysis.
"""

from __future__ import annotations

import bisect
import os
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path

import redis
import structlog

from shipyard.router import haproxy, request_log
from shipyard.shared import router_log
from shipyard.shared.router_stats import LATENCY_BUCKETS_MS

log = structlog.get_logger(__name__)

# Lines appended in one round trip at most, and how long the reader waits for a line before it
# looks whether it should stop.
BATCH_MAX = 500
WAIT_SECONDS = 0.5
# The slot → environment map is read again this often, and at once (at most this often) when a
# line comes from a slot it does not know: an environment created since.
SLOTS_REFRESH_SECONDS = 60.0
UNKNOWN_SLOT_REFRESH_SECONDS = 2.0
# Room for bursts while a batch is sent (the kernel may allow less).
_RECEIVE_BUFFER_BYTES = 1 << 20

SlotMap = dict[int, uuid.UUID]
# Responses per bucket of shared.router_stats.LATENCY_BUCKETS_MS, and one slower.
Histogram = tuple[int, ...]


class ResponseTimes:
    """Each server's responses counted by time taken, since it was first seen: the `service=`
    time of its `router:` lines (from the connection made to the last byte), for the servers
    of the environments' backends. Fed by the reader's thread, read by another: locked."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], list[int]] = {}
        self._lock = threading.Lock()

    def add(self, records: Iterable[request_log.RequestRecord]) -> None:
        """Count the responses of these requests (those that reached no process are not)."""
        timed = [
            (record.backend, record.server, taken)
            for record in records
            if haproxy.backend_slot(record.backend) is not None
            and (taken := service_ms(record)) is not None
        ]
        with self._lock:
            for backend, server, taken in timed:
                counts = self._counts.get((backend, server))
                if counts is None:
                    counts = self._counts[backend, server] = [0] * (len(LATENCY_BUCKETS_MS) + 1)
                counts[bisect.bisect_left(LATENCY_BUCKETS_MS, taken)] += 1

    def latency(self) -> dict[str, dict[str, Histogram]]:
        """Backend → server → its responses per bucket so far (a copy)."""
        found: dict[str, dict[str, Histogram]] = {}
        with self._lock:
            for (backend, server), counts in self._counts.items():
                found.setdefault(backend, {})[server] = tuple(counts)
        return found

    def keep_only(self, present: Mapping[str, Collection[str]]) -> None:
        """Forget the servers not in `present` (backend → its servers): the router has them no
        more (each deploy replaces an environment's), and one added again starts from zero."""
        with self._lock:
            for backend, server in list(self._counts):
                if server not in present.get(backend, ()):
                    del self._counts[backend, server]


def service_ms(record: request_log.RequestRecord) -> int | None:
    """The `service=` time of the request's `router:` line, in ms; None if it has none (no
    connection to a process was made)."""
    _, service = request_log._timings(record)
    return int(service.removesuffix("ms")) if service else None


class RouterLogReader:
    """Reads the request log socket on a thread of its own until `stop`; `load_slots` reads
    which environment has each router slot from the store. The servers' response times are
    in `response_times`."""

    def __init__(
        self,
        *,
        path: Path,
        client: redis.Redis,
        namespace: str,
        load_slots: Callable[[], SlotMap],
    ) -> None:
        self.path = path
        self.client = client
        self.namespace = namespace
        self.load_slots = load_slots
        self.slots: SlotMap = {}
        self._loaded_at: float | None = None
        self._socket: socket.socket | None = None
        self._readable = select.poll()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._broker_down = False
        self.response_times = ResponseTimes()

    def bind(self) -> None:
        """Create the socket, readable and writable by this user only (HAProxy runs as it), so
        that no other user can write lines into an environment's log."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER_BYTES)
        # Bound under another name and renamed once its mode is right: never writable by others.
        staging = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        staging.unlink(missing_ok=True)
        receiver.bind(str(staging))
        os.chmod(staging, 0o600)
        os.replace(staging, self.path)
        receiver.setblocking(False)
        self._socket = receiver
        self._readable.register(receiver, select.POLLIN)

    def latency(self) -> dict[str, dict[str, Histogram]]:
        """Backend → server → its responses per response-time bucket so far (a copy)."""
        return self.response_times.latency()

    def start(self) -> None:
        """Read on a thread of its own (bind first)."""
        self._thread = threading.Thread(target=self._run, name="router-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading (a batch under way is sent first); remove the socket, close the client."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
            self.path.unlink(missing_ok=True)
        self.client.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                messages = self._receive()
                if messages:
                    self.ship(messages)
            except Exception as exc:  # never the end of the router's request log
                log.error("router_log.failed", error=f"{type(exc).__name__}: {exc}")
                self._stopping.wait(WAIT_SECONDS)

    def _receive(self) -> list[bytes]:
        """The datagrams waiting (up to BATCH_MAX), after waiting a moment for the first."""
        assert self._socket is not None
        messages: list[bytes] = []
        if not self._readable.poll(WAIT_SECONDS * 1000):
            return messages
        while len(messages) < BATCH_MAX:
            try:
                messages.append(self._socket.recv(request_log.LOG_LINE_MAX + 1))
            except BlockingIOError:
                break
        return messages

    def ship(self, messages: list[bytes]) -> None:
        """Time each request's response, and append its line to its environment's stream;
        requests to no environment (an unknown host) and lines the broker cannot take are
        dropped."""
        records = [record for message in messages if (record := request_log.parse(message))]
        self.response_times.add(records)
        slotted = [(haproxy.backend_slot(record.backend), record) for record in records]
        if any(slot is not None and slot not in self.slots for slot, _ in slotted):
            self._refresh(UNKNOWN_SLOT_REFRESH_SECONDS)
        else:
            self._refresh(SLOTS_REFRESH_SECONDS)
        lines: dict[uuid.UUID, list[str]] = {}
        for slot, record in slotted:
            environment_id = self.slots.get(slot) if slot is not None else None
            if environment_id is not None:
                lines.setdefault(environment_id, []).append(request_log.line(record))
        if not lines:
            return
        try:
            router_log.append(self.client, self.namespace, lines)
        except redis.RedisError as exc:
            if not self._broker_down:
                log.warning("router_log.broker_unavailable", error=f"{type(exc).__name__}: {exc}")
            self._broker_down = True
            return
        if self._broker_down:
            log.info("router_log.broker_back")
        self._broker_down = False

    def _refresh(self, older_than: float) -> None:
        """Read the slot map again if it is older than `older_than` seconds (or never read)."""
        if self._loaded_at is not None and time.monotonic() - self._loaded_at < older_than:
            return
        self._loaded_at = time.monotonic()  # a store away is asked again only that much later
        try:
            self.slots = self.load_slots()
        except Exception as exc:  # the store away: the last map serves on
            log.warning("router_log.slots_unavailable", error=f"{type(exc).__name__}: {exc}")
