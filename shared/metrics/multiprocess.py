"""This host's metrics directory: where worker processes write, and how it is read back.

prometheus-client's multiprocess mode: each process (a Celery pool's children included) writes
its values to files in PROMETHEUS_MULTIPROC_DIR, which a collector merges at scrape time. The
variable is read when prometheus-client is imported, so `use_metrics_dir` runs in the entry
points before anything imports it; that is why this module imports prometheus-client only
inside its functions.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Final

import structlog

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

log = structlog.get_logger(__name__)

ENV_VARIABLE: Final = "PROMETHEUS_MULTIPROC_DIR"


def use_metrics_dir(path: Path) -> None:
    """Make this process (and the processes it starts) write its metrics into `path`."""
    path.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_VARIABLE] = str(path)
    values = sys.modules.get("prometheus_client.values")
    if values is not None and not _multiprocess_values(values):
        # Imported too early: this process would count in memory, where no scrape sees it.
        log.warning("metrics.imported_before_multiprocess_dir", path=str(path))


def _multiprocess_values(values: object) -> bool:
    value_class = getattr(values, "ValueClass", None)
    return getattr(value_class, "__name__", "") == "MmapedValue"


def wipe_metrics_dir(path: Path) -> None:
    """Remove the files of processes that are gone, in `path` and its hosts' folders (at
    `shipyard up` start, before any process writes there)."""
    for stale in _files(path):
        stale.unlink(missing_ok=True)


def mark_process_dead(pid: int, path: Path) -> None:
    """Drop a dead process's live gauges, as the library asks of a pool's exiting children."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


def host_registry(path: Path) -> CollectorRegistry:
    """A registry of what the processes writing in `path` (or in a host's folder below it)
    recorded; empty if there is nothing there."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    registry.register(_FilesCollector(path))
    return registry


def _files(path: Path) -> list[Path]:
    """The metrics files in `path` and in its folders one level down (a folder per host)."""
    if not path.is_dir():
        return []
    return sorted([*path.glob("*.db"), *path.glob("*/*.db")])


class _FilesCollector:
    """prometheus-client's MultiProcessCollector over several folders: every host's files are
    merged into one family per metric (two collectors would repeat the families' names)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def collect(self) -> Iterable[Metric]:
        from prometheus_client.multiprocess import MultiProcessCollector

        files = [str(file) for file in _files(self._path)]
        merged: Iterable[Metric] = MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call]
        return merged
