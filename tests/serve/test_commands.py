"""Server command lines: a safe import path and a working directory of Shipyard's own."""

from __future__ import annotations

import os
import sys
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
