"""The noop runner: the switch's whole path with nothing started, and a real digest check."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from shipyard.shared.artifacts import FileStore
from shipyard.shared.exceptions import ArtifactIntegrityError
from shipyard.shared.process_record import ProcessRecord
from shipyard.shared.schemas import EnvironmentCreate
from shipyard.workers.runners import RUNNERS
from shipyard.workers.runners.base import ReleaseSpec, run_to_end
from shipyard.workers.runners.noop import NoopRunner
from shipyard.workers.runners.switch import switch


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "artifacts")


@pytest.fixture
def artifact_id(tmp_path: Path, store: FileStore) -> str:
    source = tmp_path / "artifact.tar.gz"
    source.write_bytes(b"an artifact")
    digest = store.put(source, app="app").digest
    return digest


def make_spec(artifact_id: str, deployment_id: str = "new") -> ReleaseSpec:
    return ReleaseSpec(
        app="web",
        environment="staging",
        release_id="r2",
        release_version=2,
        deployment_id=deployment_id,
        artifact_id=artifact_id,
        health_path="/",
        health_timeout=0.5,
        env={"SECRET": "never used"},
    )


def test_start_records_a_running_web_without_url(store: FileStore, artifact_id: str) -> None:
    runner = NoopRunner(store)

    processes = runner.start(make_spec(artifact_id))

    assert [(p["type"], p["status"], p["url"]) for p in processes] == [("web", "running", None)]
    assert all(runner.is_running(p) for p in processes)
    assert runner.output_tail(processes[0], 20) == ""


def test_records_of_other_runners_are_not_running(store: FileStore) -> None:
    assert not NoopRunner(store).is_running({"type": "web", "pid": 1, "url": None})


def test_a_missing_or_modified_artifact_is_refused(store: FileStore, artifact_id: str) -> None:
    runner = NoopRunner(store)
    store.path_for(artifact_id).chmod(0o644)
    store.path_for(artifact_id).write_bytes(b"tampered")

    with pytest.raises(ArtifactIntegrityError, match="modified"):
        runner.start(make_spec(artifact_id))
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        runner.start(make_spec("sha256:" + "1" * 64))


def test_the_switch_goes_live_without_a_health_request(store: FileStore, artifact_id: str) -> None:
    runner = NoopRunner(store)
    previous = runner.start(make_spec(artifact_id, "old"))
    live: list[list[ProcessRecord]] = []

    class Recorder:
        replaced: uuid.UUID | None = None

        def started(self, processes: list[ProcessRecord]) -> None:
            pass

        def go_live(self, processes: list[ProcessRecord]) -> list[ProcessRecord]:
            live.append(processes)
            return previous

        def switched(self) -> None:
            pass

        def retired(self) -> None:
            pass

        def stand_by(self) -> bool:
            return False

    processes = switch(runner, make_spec(artifact_id), Recorder())

    assert live == [processes]
    assert processes[0]["deployment"] == "new"


def test_the_release_phase_succeeds_without_running_anything(
    store: FileStore, artifact_id: str
) -> None:
    result = run_to_end(NoopRunner(store), make_spec(artifact_id), "exit 1", timeout=1)

    assert (result.exit_code, result.output) == (0, "")


def test_it_is_registered_and_an_environment_can_choose_it() -> None:
    assert "noop" in RUNNERS
    assert EnvironmentCreate(name="bench", runner="noop").runner == "noop"
