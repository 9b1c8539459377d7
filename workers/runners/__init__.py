"""Runner drivers by name: an environment's `runner` field picks one."""

from __future__ import annotations

from collections.abc import Callable

from shipyard.shared.exceptions import StageFailed
from shipyard.workers.context import WorkerContext
from shipyard.workers.runners.base import Runner
from shipyard.workers.runners.docker import DockerRunner
from shipyard.workers.runners.local import LocalRunner
from shipyard.workers.runners.noop import NoopRunner

RUNNERS: dict[str, Callable[[WorkerContext], Runner]] = {
    "local": lambda context: LocalRunner(
        context.store,
        context.settings.run_dir,
        context.settings.storage_dir,
        context.sandbox,
        context.settings.host_name,
    ),
    "docker": lambda context: DockerRunner(
        context.docker.client(), context.store.images, context.settings.app_uid_base
    ),
    "noop": lambda context: NoopRunner(context.store),
}


def get_runner(name: str, context: WorkerContext) -> Runner:
    """The runner called `name`, made for this worker."""
    factory = RUNNERS.get(name)
    if factory is None:
        raise StageFailed(f"unknown runner {name!r} (known: {', '.join(sorted(RUNNERS))})")
    return factory(context)
