"""The driver names, defined once: the API's schemas accept these, and the workers' registries
(workers/builders, workers/runners) have exactly one driver for each (a test checks)."""

from __future__ import annotations

from typing import Final, Literal, get_args

# How an app's commit becomes an artifact.
BuilderName = Literal["local", "python", "docker", "noop"]
# Where an environment's processes run.
RunnerName = Literal["local", "docker", "noop"]

BUILDER_NAMES: Final[tuple[str, ...]] = get_args(BuilderName)
RUNNER_NAMES: Final[tuple[str, ...]] = get_args(RunnerName)
