"""The noop builder: a real, reproducible artifact per commit, without running anything."""

from __future__ import annotations

import tarfile
import time
from pathlib import Path

import pytest

from shipyard.shared.artifacts import FileStore, file_digest
from shipyard.shared.exceptions import StageFailed
from shipyard.shared.schemas import AppCreate
from shipyard.workers.build_log import BuildLog
from shipyard.workers.builders import BUILDERS
from shipyard.workers.builders.base import BuildRequest
from shipyard.workers.builders.noop import WAIT_VARIABLE, NoopBuilder, build_wait_seconds

COMMIT_TIME = 1_700_000_000


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "artifacts")


def _request(tmp_path: Path, sha: str, name: str = "work") -> BuildRequest:
    source = tmp_path / name / "src"
    source.mkdir(parents=True)
    (source / "Procfile").write_text("web: python app.py\n")
    # A build command the noop builder must never run.
    (source / "shipyard.toml").write_text("[build]\ncommand = 'touch ran.txt'\n")
    return BuildRequest(
        app="web",
        commit_sha=sha,
        commit_timestamp=COMMIT_TIME,
        source_dir=source,
        work_dir=source.parent,
        timeout=60,
    )


def test_the_artifact_is_stored_under_its_real_digest(tmp_path: Path, store: FileStore) -> None:
    log = BuildLog(limit=10_000)

    built = NoopBuilder(store).build(_request(tmp_path, "a" * 40), log)

    assert store.fetch(built.digest, app="app") == Path(built.location)
    assert built.digest == file_digest(Path(built.location))
    assert built.size == Path(built.location).stat().st_size
    with tarfile.open(built.location) as tar:
        assert sorted(tar.getnames()) == ["COMMIT", "Procfile"]
        commit = tar.extractfile("COMMIT")
        assert commit is not None and commit.read() == b"a" * 40 + b"\n"
    assert f"Noop artifact {built.digest}" in log.text()


def test_nothing_of_the_app_runs(tmp_path: Path, store: FileStore) -> None:
    request = _request(tmp_path, "a" * 40)

    NoopBuilder(store).build(request, BuildLog(limit=10_000))

    assert not (request.source_dir / "ran.txt").exists()


def test_the_same_commit_gives_the_same_digest_and_another_commit_another(
    tmp_path: Path, store: FileStore
) -> None:
    builder = NoopBuilder(store)
    log = BuildLog(limit=10_000)

    first = builder.build(_request(tmp_path, "a" * 40, "one"), log)
    again = builder.build(_request(tmp_path, "a" * 40, "two"), log)
    other = builder.build(_request(tmp_path, "b" * 40, "three"), log)

    assert first.digest == again.digest
    assert other.digest != first.digest


def test_remove_deletes_the_artifact_and_a_missing_one_is_fine(
    tmp_path: Path, store: FileStore
) -> None:
    builder = NoopBuilder(store)
    built = builder.build(_request(tmp_path, "a" * 40), BuildLog(limit=10_000))

    assert builder.has("app", built.digest)
    builder.remove("app", built.digest)
    builder.remove("app", built.digest)

    assert not Path(built.location).exists()
    assert not builder.has("app", built.digest)  # a cache hit on it would build it again


def test_a_configured_wait_stands_for_the_build(tmp_path: Path, store: FileStore) -> None:
    log = BuildLog(limit=10_000)
    started = time.monotonic()

    NoopBuilder(store, wait_seconds=0.2).build(_request(tmp_path, "a" * 40), log)

    assert time.monotonic() - started >= 0.2
    assert "waiting 0.2s" in log.text()


def test_the_wait_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_wait_seconds() == 0.0
    monkeypatch.setenv(WAIT_VARIABLE, "1.5")
    assert build_wait_seconds() == 1.5
    for wrong in ("soon", "-1", "100000"):
        monkeypatch.setenv(WAIT_VARIABLE, wrong)
        with pytest.raises(StageFailed, match=WAIT_VARIABLE):
            build_wait_seconds()


def test_it_is_registered_and_an_app_can_choose_it() -> None:
    assert "noop" in BUILDERS
    assert AppCreate(name="bench", repo="/srv/repo", builder="noop").builder == "noop"
