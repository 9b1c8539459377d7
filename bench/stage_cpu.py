"""Where a stage's own CPU goes, measured in process (scenario 1's CPU attribution).

The three stages of noop pipelines run here, one after another, through the workers' own
`frame.execute` against the stack's database (their events go to an in-memory broker, so no
pool sees them). Process CPU (`time.process_time`) is split three ways, with no profiler in
the way:
- the store: time inside SQLAlchemy's entry points (a session's execute, get, flush, commit,
  close; a connection's execute), psycopg's work beneath them included;
- git: the CPU of the child processes a stage waited for (a build's git processes);
- the rest: the stages' own Python (the frame, the stage's work, file I/O, logging, metrics).
PostgreSQL's own CPU for these statements, and what Celery and Redis cost per stage, are
measured apart (the throughput phase's per-process CPU, the raw chain).
"""

from __future__ import annotations

import functools
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlmodel
from sqlalchemy import orm
from sqlalchemy.engine import Connection

# The entry points a stage reaches the store through, each on the class that defines it;
# nested calls are counted once.
_ENTRY_POINTS: tuple[tuple[type, str], ...] = (
    (sqlmodel.Session, "exec"),
    (sqlmodel.Session, "execute"),
    (orm.Session, "execute"),
    (orm.Session, "get"),
    (orm.Session, "connection"),
    (orm.Session, "flush"),
    (orm.Session, "commit"),
    (orm.Session, "rollback"),
    (orm.Session, "close"),
    (Connection, "execute"),
)


class StoreClock:
    """Process CPU spent inside the store's entry points while `measuring()` is entered."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._depth = 0

    def _timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth:
                return method(*args, **kwargs)
            self._depth += 1
            started = time.process_time()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.process_time() - started
                self._depth -= 1

        return timed

    @contextmanager
    def measuring(self) -> Iterator[StoreClock]:
        originals = [(owner, name, owner.__dict__[name]) for owner, name in _ENTRY_POINTS]
        for owner, name, method in originals:
            setattr(owner, name, self._timed(method))
        try:
            yield self
        finally:
            for owner, name, method in originals:
                setattr(owner, name, method)


def children_seconds() -> float:
    """CPU of this process's waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class StageCpu:
    """Process CPU, store CPU and children's CPU of the blocks measured with `stage()`."""

    def __init__(self) -> None:
        self.clock = StoreClock()
        self.total: dict[str, float] = {}
        self.store: dict[str, float] = {}
        self.git: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        store_before = self.clock.seconds
        children_before = children_seconds()
        started = time.process_time()
        with self.clock.measuring():
            yield
        self.total[name] = self.total.get(name, 0.0) + time.process_time() - started
        self.store[name] = self.store.get(name, 0.0) + self.clock.seconds - store_before
        self.git[name] = self.git.get(name, 0.0) + children_seconds() - children_before
