"""A build's output, kept within a size limit: the head and the tail survive, the middle goes."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)


class BuildLog:
    """Collects build output lines; thread-safe so a reader thread can write while we wait."""

    def __init__(self, limit: int, sink: Callable[[str], None] | None = None) -> None:
        self._limit = limit
        # Also given each line as it is written (the live view); a failing sink is dropped, as
        # the stored log does not depend on it.
        self._sink = sink
        self._head: list[str] = []
        self._tail: deque[str] = deque()
        self._head_size = 0
        self._tail_size = 0
        self._dropped = 0
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        """Append one line (a trailing newline is added if missing)."""
        if not line.endswith("\n"):
            line += "\n"
        if self._sink is not None:
            try:
                self._sink(line)
            except Exception as exc:
                log.warning("build_log.live_view_lost", error=f"{type(exc).__name__}: {exc}")
                self._sink = None
        with self._lock:
            if self._head_size + len(line) <= self._limit // 2:
                self._head.append(line)
                self._head_size += len(line)
                return
            self._tail.append(line)
            self._tail_size += len(line)
            while self._tail_size > self._limit // 2 and self._tail:
                self._tail_size -= len(self._tail.popleft())
                self._dropped += 1

    def text(self) -> str:
        """The log as stored: head, a marker for what was cut, tail."""
        with self._lock:
            middle = [f"... {self._dropped} lines cut (log limit) ...\n"] if self._dropped else []
            return "".join([*self._head, *middle, *self._tail])
