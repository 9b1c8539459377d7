"""The local builder: a scrubbed build command, a time limit, and reproducible artifacts."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import signal
import tarfile
import time
import warnings
from pathlib import Path

import pytest

from shipyard.shared import processes
from shipyard.shared.artifacts import FileStore, file_digest
from shipyard.shared.exceptions import StageFailed
from shipyard.workers.build_log import BuildLog
from shipyard.workers.builders.base import BuildRequest
from shipyard.workers.builders.local import LocalBuilder, pack_reproducibly
from shipyard.workers.sandbox import Sandbox
from tests import attacker

COMMIT_TIME = 1_700_000_000


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    """An exported app: a script, an executable, and a nested file."""
    source = tmp_path / "src"
    (source / "lib").mkdir(parents=True)
    (source / "app.py").write_text("print('hello')\n")
    (source / "lib" / "util.py").write_text("X = 1\n")
    (source / "run.sh").write_text("#!/bin/sh\nexec python app.py\n")
    (source / "run.sh").chmod(0o775)
    return source


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "artifacts")


def _builder(store: FileStore, tmp_path: Path) -> LocalBuilder:
    """The local builder with the default sandbox (auto: confined where bubblewrap works)."""
    return LocalBuilder(store, Sandbox("auto", data_dir=tmp_path))


def _request(source_dir: Path, tmp_path: Path, timeout: float = 60) -> BuildRequest:
    work_dir = tmp_path / "work"
    work_dir.mkdir(exist_ok=True)
    return BuildRequest(
        app="web",
        commit_sha="a" * 40,
        commit_timestamp=COMMIT_TIME,
        source_dir=source_dir,
        work_dir=work_dir,
        timeout=timeout,
    )


def _with_build_command(source_dir: Path, command: str, timeout: float | None = None) -> None:
    manifest = f"[build]\ncommand = '''{command}'''\n"
    if timeout is not None:
        manifest += f"timeout = {timeout}\n"
    (source_dir / "shipyard.toml").write_text(manifest)


def _read_member(artifact: Path, name: str) -> str:
    with tarfile.open(artifact) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read().decode()


def test_packing_the_same_files_twice_gives_the_same_digest(
    source_dir: Path, tmp_path: Path
) -> None:
    first, second = tmp_path / "first.tar.gz", tmp_path / "second.tar.gz"

    pack_reproducibly(source_dir, first, mtime=COMMIT_TIME)
    # Another checkout of the same commit: same content, new mtimes and another directory.
    copy = tmp_path / "elsewhere" / "src"
    shutil.copytree(source_dir, copy)
    os.utime(copy / "app.py", (1, 1))
    pack_reproducibly(copy, second, mtime=COMMIT_TIME)

    assert first.read_bytes() == second.read_bytes()
    assert file_digest(first) == file_digest(second)


def test_a_changed_file_changes_the_digest(source_dir: Path, tmp_path: Path) -> None:
    before, after = tmp_path / "before.tar.gz", tmp_path / "after.tar.gz"
    pack_reproducibly(source_dir, before, mtime=COMMIT_TIME)

    (source_dir / "app.py").write_text("print('changed')\n")
    pack_reproducibly(source_dir, after, mtime=COMMIT_TIME)

    assert file_digest(before) != file_digest(after)


def test_packed_entries_are_sorted_with_fixed_times_owners_and_modes(
    source_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "artifact.tar.gz"

    pack_reproducibly(source_dir, target, mtime=COMMIT_TIME)

    with tarfile.open(target) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["app.py", "lib", "lib/util.py", "run.sh"]
    assert {m.mtime for m in members} == {COMMIT_TIME}
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
    modes = {m.name: m.mode for m in members}
    assert modes == {"app.py": 0o644, "lib": 0o755, "lib/util.py": 0o644, "run.sh": 0o755}


def test_a_build_without_a_command_stores_the_source_as_the_artifact(
    source_dir: Path, tmp_path: Path, store: FileStore
) -> None:
    log = BuildLog(limit=100_000)

    built = _builder(store, tmp_path).build(_request(source_dir, tmp_path), log)

    assert built.digest == file_digest(Path(built.location))
    assert store.fetch(built.digest, app="app") == Path(built.location)
    assert _read_member(Path(built.location), "app.py") == "print('hello')\n"
    assert "No build command declared" in log.text()
    assert f"Artifact {built.digest}" in log.text()


def test_the_build_command_runs_in_the_source_dir_and_its_output_is_logged(
    source_dir: Path, tmp_path: Path, store: FileStore
) -> None:
    _with_build_command(source_dir, "echo compiling; echo compiled > compiled.txt")
    log = BuildLog(limit=100_000)

    built = _builder(store, tmp_path).build(_request(source_dir, tmp_path), log)

    assert _read_member(Path(built.location), "compiled.txt") == "compiled\n"
    lines = log.text().splitlines()
    assert lines.index("compiling") > lines.index(
        "-----> Running build command: echo compiling; echo compiled > compiled.txt"
    )


def test_the_build_environment_is_scrubbed_of_the_workers_secrets(
    source_dir: Path, tmp_path: Path, store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_SECRET_KEY", "worker-fernet-key-must-not-leak")
    monkeypatch.setenv("SHIPYARD_DATABASE_URL", "postgresql://shipyard:pw-must-not-leak@db/s")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-must-not-leak")
    # Written to the build's home, not into the artifact: HOME and PWD name the build's own
    # directory, which the relocatability check refuses in an artifact.
    _with_build_command(source_dir, 'env > "$HOME/build-env.txt"')

    _builder(store, tmp_path).build(_request(source_dir, tmp_path), BuildLog(limit=100_000))

    build_env = (tmp_path / "work" / "home" / "build-env.txt").read_text()
    assert "must-not-leak" not in build_env
    assert "SHIPYARD_" not in build_env
    assert "AWS_SECRET_ACCESS_KEY" not in build_env
    variables = dict(line.split("=", 1) for line in build_env.splitlines() if "=" in line)
    assert variables["SOURCE_VERSION"] == "a" * 40
    assert variables["SOURCE_DATE_EPOCH"] == str(COMMIT_TIME)
    assert variables["HOME"] == str(tmp_path / "work" / "home")


def test_a_failing_build_command_fails_the_stage_and_keeps_its_output(
    source_dir: Path, tmp_path: Path, store: FileStore
) -> None:
    _with_build_command(source_dir, "echo installing; echo 'npm ERR! missing script' >&2; exit 3")
    log = BuildLog(limit=100_000)

    with pytest.raises(StageFailed, match="build command exited with status 3"):
        _builder(store, tmp_path).build(_request(source_dir, tmp_path), log)

    assert "installing\n" in log.text()
    assert "npm ERR! missing script\n" in log.text()
    assert not (tmp_path / "artifacts").exists()


def test_a_build_over_its_time_limit_is_killed_with_its_children(
    source_dir: Path, tmp_path: Path, store: FileStore
) -> None:
    mark = _sleep_mark()
    _with_build_command(source_dir, f"echo started; sleep {mark} & wait")
    log = BuildLog(limit=100_000)
    before = time.monotonic()

    with pytest.raises(StageFailed, match="timed out after .* and was killed"):
        _builder(store, tmp_path).build(_request(source_dir, tmp_path, timeout=0.5), log)

    assert time.monotonic() - before < 10  # the limit, not the 30 s the command wanted
    assert "started\n" in log.text()
    assert _gone(mark, within=5), f"the build's `sleep {mark}` still runs 5 s after the build"


def test_the_manifest_can_only_shorten_the_time_limit(
    source_dir: Path, tmp_path: Path, store: FileStore
) -> None:
    _with_build_command(source_dir, "sleep 30", timeout=0.3)
    before = time.monotonic()

    with pytest.raises(StageFailed, match="timed out"):
        _builder(store, tmp_path).build(_request(source_dir, tmp_path, timeout=600), BuildLog(1000))

    assert time.monotonic() - before < 10


def test_the_build_commands_output_pipe_is_closed(
    source_dir: Path, tmp_path: Path, store: FileStore
) -> None:
    # A worker runs builds for months: each one must give its pipe back, not wait for the GC.
    _with_build_command(source_dir, "echo built")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        _builder(store, tmp_path).build(_request(source_dir, tmp_path), BuildLog(limit=100_000))
        gc.collect()

    # Sockets collected here are other tests' garbage; the build's pipe is a file.
    unclosed = [str(w.message) for w in caught if w.category is ResourceWarning]
    assert [message for message in unclosed if "socket" not in message] == []


def test_nothing_the_build_command_started_outlives_the_build(
    source_dir: Path, tmp_path: Path, store: FileStore
) -> None:
    # A background process (a daemon, a watcher) keeps the output pipe open and would keep
    # running on the worker, with the build's environment, after the build was packed.
    mark = _sleep_mark()
    _with_build_command(source_dir, f"sleep {mark} & echo built")
    before = time.monotonic()

    try:
        _builder(store, tmp_path).build(_request(source_dir, tmp_path), BuildLog(limit=100_000))

        # The command itself ends at once; only a pipe left open could hold the build up.
        assert time.monotonic() - before < 4
        assert _gone(mark, within=2), f"the build's `sleep {mark}` outlived the build by 2 s"
    finally:
        for pid in _running_with(mark):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _sleep_mark() -> str:
    """A `sleep` argument no other process has (about 30 s), to find the build's sleeper by:
    its pid inside the build's sandbox means nothing outside."""
    return f"30.{time.time_ns() % 10**9:09d}"


def _running_with(argument: str) -> list[int]:
    """The processes on this host with `argument` on their command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if argument.encode() in (entry / "cmdline").read_bytes().split(b"\0"):
                if processes.start_time(int(entry.name)) is not None:  # not a zombie
                    found.append(int(entry.name))
    return found


def _gone(argument: str, within: float) -> bool:
    deadline = time.monotonic() + within
    while _running_with(argument):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_confined_build_reaches_neither_the_platform_nor_another_app(
    source_dir: Path, tmp_path: Path, store: FileStore, confining_sandbox: Sandbox
) -> None:
    secrets = [tmp_path / "secret.key", tmp_path / "admin-token", tmp_path / "shipyard.db"]
    others = [tmp_path / "storage" / "victim" / "staging" / "private.txt", tmp_path / "run"]
    for path in (*secrets, others[0]):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("private")
    (source_dir / "attack.py").write_text(attacker.ATTACK_SCRIPT)
    targets = ":".join(str(p) for p in (*secrets, *others))
    plant = ":".join(str(p) for p in (tmp_path, tmp_path / "run", store.root))
    # The build's own home stands for the storage a build does not have.
    _with_build_command(
        source_dir,
        f'TARGETS={targets} PLANT={plant} SHIPYARD_STORAGE_DIR="$HOME" python3 attack.py',
    )
    log = BuildLog(limit=100_000)
    umask = os.umask(0o077)  # as every server command sets it: the tree is the app's alone
    try:
        LocalBuilder(store, confining_sandbox).build(_request(source_dir, tmp_path), log)
    finally:
        os.umask(umask)

    report = attacker.parse_report(log.text())
    assert {k: v for k, v in attacker.breaches(report).items() if "$HOME" not in k} == {}
    assert len(report["read"]) == 5 and report["storage"] == "allowed"
    assert len(report["processes"]) < 10
    if os.geteuid() == 0:
        assert report["uid"] == confining_sandbox.uid_for("web") != 0
    assert not (tmp_path / "planted").exists() and not (tmp_path / "run" / "planted").exists()
