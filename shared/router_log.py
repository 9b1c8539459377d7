"""The router's request lines of each environment: a Redis stream on the broker per environment,
which every run host's router agent appends to and `logs` reads (the `router:` lines), capped
in length and dropped a while after the last request (the same kind of stream as a build's live
log, shared.build_stream)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
import structlog

from shipyard.shared import constants
from shipyard.shared.build_stream import READ_COUNT, START

log = structlog.get_logger(__name__)

# How `logs` labels the lines (`router: at=info …`), as Heroku's `heroku[router]`.
LABEL = "router"
# How long a follower leaves the broker alone after it failed to answer.
RETRY_SECONDS = 10.0


def stream_key(namespace: str, environment_id: uuid.UUID) -> str:
    """The Redis key of an environment's router lines."""
    return f"{namespace}:routerlog:{environment_id}"


def append(client: redis.Redis, namespace: str, lines: Mapping[uuid.UUID, Sequence[str]]) -> None:
    """Add each environment's lines to its stream, and keep the streams alive: one round trip."""
    pipe = client.pipeline(transaction=False)
    for environment_id, environment_lines in lines.items():
        key = stream_key(namespace, environment_id)
        for line in environment_lines:
            pipe.xadd(key, {"line": line}, maxlen=constants.ROUTER_LOG_MAX_LINES, approximate=True)
        pipe.expire(key, constants.ROUTER_LOG_TTL_SECONDS)
    pipe.execute()


@dataclass
class RouterLogSource:
    """An environment's router lines as a source of `logs` (shared.app_logs.LogSource). The
    broker away, it has no lines: the processes' output is still shown."""

    client: redis.Redis
    key: str
    label: str = LABEL
    _after: str = START  # the last entry read
    _failing: bool = False
    _retry_at: float = 0.0

    @property
    def origin(self) -> str:
        return self.key

    def tail(self, lines: int) -> list[str]:
        # The newest entry even for no lines: `poll` starts after it.
        entries = self._read(lambda: self.client.xrevrange(self.key, count=max(lines, 1)))
        if not entries:
            return []
        self._after = _text(entries[0][0])
        return [_line(fields) for _id, fields in reversed(entries)][-lines:] if lines else []

    def poll(self) -> list[str]:
        after = f"({self._after}"
        entries = self._read(lambda: self.client.xrange(self.key, min=after, count=READ_COUNT))
        if not entries:
            return []
        self._after = _text(entries[-1][0])
        return [_line(fields) for _id, fields in entries]

    def _read(self, read: Callable[[], Any]) -> list[tuple[bytes, dict[bytes, bytes]]]:
        # After a failure, not asked again for a while: each try may wait for its timeout,
        # and the processes' own lines, read in the same pass, must not wait with it.
        if self._failing and time.monotonic() < self._retry_at:
            return []
        try:
            entries: list[tuple[bytes, dict[bytes, bytes]]] = read()
        except redis.RedisError as exc:
            if not self._failing:  # once per outage, not at every poll
                log.warning("router_log.unavailable", error=f"{type(exc).__name__}: {exc}")
            self._failing = True
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return []
        self._failing = False
        return entries


def _line(fields: Mapping[bytes, bytes] | None) -> str:
    return _text((fields or {}).get(b"line", b""))


def _text(value: bytes | str | None) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value or ""
