"""A build's output, kept within a size limit: the head and the tail survive, the middle goes."""

from __future__ import annotations

import threading
from collections import deque


class BuildLog:
    """Collects build output lines; thread-safe so a reader thread can write while we wait."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
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
