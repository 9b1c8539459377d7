"""Builder drivers by name: an app's `builder` field picks one."""

from __future__ import annotations

from collections.abc import Callable

from shipyard.shared.exceptions import StageFailed
from shipyard.workers.builders.base import Builder
from shipyard.workers.builders.docker import DockerBuilder
from shipyard.workers.builders.local import LocalBuilder
from shipyard.workers.builders.noop import NoopBuilder, build_wait_seconds
from shipyard.workers.builders.python import PythonBuilder, PythonBuildpack
from shipyard.workers.context import WorkerContext

BUILDERS: dict[str, Callable[[WorkerContext], Builder]] = {
    # A Python app without a build command of its own gets the Python buildpack (detected).
    "local": lambda context: LocalBuilder(context.store, context.sandbox, (PythonBuildpack(),)),
    "python": lambda context: PythonBuilder(context.store, context.sandbox),
    "docker": lambda context: DockerBuilder(context.docker.client(), context.store.images),
    "noop": lambda context: NoopBuilder(context.store, build_wait_seconds()),
}


def get_builder(name: str, context: WorkerContext) -> Builder:
    """The builder called `name`, made for this worker."""
    factory = BUILDERS.get(name)
    if factory is None:
        raise StageFailed(f"unknown builder {name!r} (known: {', '.join(sorted(BUILDERS))})")
    return factory(context)
