"""Server command lines: a safe import path and a working directory of Shipyard's own."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.serve import commands
from shipyard.shared.settings import Settings


@pytest.mark.parametrize(
    "argv",
    [
        commands.worker_command("build"),
        commands.beat_command(Settings(data_dir=Path("/srv/shipyard"))),
        commands.api_command("127.0.0.1", 8000),
        commands.router_command(),
    ],
)
def test_every_server_runs_without_the_current_directory_on_its_import_path(
    argv: list[str],
) -> None:
    assert argv[:3] == [sys.executable, "-P", "-m"]
    assert argv[3] in {"shipyard", "celery"}


def test_the_pools_load_the_packaged_celery_app() -> None:
    argv = commands.worker_command("run")
    assert argv[argv.index("-A") + 1] == "shipyard.workers.app"


def test_a_run_pool_also_consumes_its_hosts_own_run_queue() -> None:
    run = commands.worker_command("run", run_host="alpha")
    build = commands.worker_command("build", run_host="alpha")

    assert run[run.index("-Q") + 1] == "run,run.alpha"
    assert build[build.index("-Q") + 1] == "build"


def test_exec_server_starts_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    calls: list[tuple[str, list[str], str]] = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        commands.os, "execv", lambda path, argv: calls.append((path, argv, os.getcwd()))
    )

    commands.exec_server(["/bin/true", "x"], settings)

    assert calls == [("/bin/true", ["/bin/true", "x"], str(tmp_path / "data"))]


@pytest.fixture
def restored_umask() -> Iterator[None]:
    """keep_private sets the process's umask: the tests' own is put back afterwards."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield
    os.umask(previous)


def test_keep_private_tightens_an_older_data_dir_and_store_and_makes_new_files_private(
    tmp_path: Path, restored_umask: None
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    for name in ("shipyard.db", "shipyard.db-wal", "shipyard.db-shm"):
        (data_dir / name).write_text("")
        (data_dir / name).chmod(0o644)

    commands.keep_private(Settings(data_dir=data_dir))

    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for name in ("shipyard.db", "shipyard.db-wal", "shipyard.db-shm"):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600
    (data_dir / "logs").mkdir()
    (data_dir / "logs" / "web.1.log").write_text("")
    assert stat.S_IMODE((data_dir / "logs").stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "logs" / "web.1.log").stat().st_mode) == 0o600


def test_keep_private_on_a_data_dir_not_made_yet_makes_nothing(
    tmp_path: Path, restored_umask: None
) -> None:
    commands.keep_private(Settings(data_dir=tmp_path / "data"))

    assert not (tmp_path / "data").exists()
    assert (
        stat.S_IMODE(commands.server_dir(Settings(data_dir=tmp_path / "data")).stat().st_mode)
        == 0o700
    )


def test_keep_private_tightens_a_sqlite_store_kept_outside_the_data_dir(
    tmp_path: Path, restored_umask: None
) -> None:
    store = tmp_path / "elsewhere" / "store.db"
    store.parent.mkdir()
    for suffix in ("", "-wal"):
        Path(f"{store}{suffix}").write_text("")
        Path(f"{store}{suffix}").chmod(0o644)

    commands.keep_private(Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{store}"))

    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(f"{store}-wal").stat().st_mode) == 0o600
