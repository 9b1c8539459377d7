"""The output of a command that someone follows as it runs (a one-off, the release phase)."""

from __future__ import annotations

from collections import deque

import redis
import structlog

from shipyard.shared import build_stream, constants
from shipyard.shared.logging import known_secrets, redact

log = structlog.get_logger(__name__)
# A line is kept (streamed, stored) up to this long; runners already pass long ones in pieces.
MAX_LINE_CHARACTERS = 16_384


class LiveOutput:
    """A command's output as it is printed: each line, redacted, to a live stream on the broker
    (shared.build_stream), and its tail kept for the record."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self._client = client
        self._key = key
        # Called from the thread that reads the command's output, which does not see the
        # secrets this task registered: they are taken now.
        self._secrets = known_secrets()
        self._tail: deque[str] = deque()
        self._size = 0
        self.stream_failed = False

    def __call__(self, line: str) -> None:
        line = redact(line[:MAX_LINE_CHARACTERS], self._secrets)
        self._tail.append(line)
        self._size += len(line) + 1
        while self._size > constants.RELEASE_OUTPUT_LIMIT_BYTES and len(self._tail) > 1:
            self._size -= len(self._tail.popleft()) + 1
        try:
            build_stream.append(self._client, self._key, line)
        except redis.RedisError as exc:  # the record still gets the tail
            if not self.stream_failed:
                log.warning("live_output.stream_failed", error=str(exc))
            self.stream_failed = True

    def announce(self, line: str) -> None:
        """A line of the platform's own (what runs now) on the live stream, not in the tail."""
        try:
            build_stream.append(self._client, self._key, redact(line, self._secrets))
        except redis.RedisError:
            self.stream_failed = True

    @property
    def tail(self) -> str:
        """The output's last lines (about RELEASE_OUTPUT_LIMIT_BYTES), each ending in a newline."""
        return "".join(f"{line}\n" for line in self._tail)
