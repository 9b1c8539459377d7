"""Driver names are declared once: the schemas accept them and each has exactly one driver."""

from __future__ import annotations

from shipyard.shared.drivers import BUILDER_NAMES, RUNNER_NAMES
from shipyard.shared.schemas import AppCreate, EnvironmentCreate
from shipyard.workers.builders import BUILDERS
from shipyard.workers.runners import RUNNERS
from shipyard.workers.runners.docker import DockerRunner
from shipyard.workers.runners.local import LocalRunner
from shipyard.workers.runners.noop import NoopRunner


def test_every_declared_builder_and_runner_has_a_driver_and_no_driver_is_undeclared() -> None:
    assert sorted(BUILDERS) == sorted(BUILDER_NAMES)
    assert sorted(RUNNERS) == sorted(RUNNER_NAMES)


def test_the_schemas_accept_exactly_the_declared_names() -> None:
    for name in BUILDER_NAMES:
        assert AppCreate(name="web", repo="/srv/web", builder=name).builder == name  # type: ignore[arg-type]
    for name in RUNNER_NAMES:
        assert EnvironmentCreate(name="staging", runner=name).runner == name  # type: ignore[arg-type]


def test_each_runner_records_its_processes_under_a_declared_name() -> None:
    # A process record's `runner` is its runner's `name`.
    assert sorted(runner.name for runner in (LocalRunner, DockerRunner, NoopRunner)) == sorted(
        RUNNER_NAMES
    )
