"""The sandbox's own rules: what it shows, how the app's environment gets in, whose files."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from shipyard.shared.exceptions import StageFailed
from shipyard.workers import sandbox as sandbox_module
from shipyard.workers.sandbox import Bind, Sandbox


def test_the_apps_environment_reaches_the_program_exactly_and_only_it(
    tmp_path: Path, confining_sandbox: Sandbox
) -> None:
    place = tmp_path / "app"
    place.mkdir(mode=0o755)
    jail = confining_sandbox.jail("web", [Bind(place, "/app")], Bind(place, "/app"))
    env = {
        "PATH": "/usr/bin:/bin",
        "TRICKY": 'it\'s $HOME `id` "q"\nsecond line; exit 3',
        "EMPTY": "",
        "not-a-shell-name": "left out",
    }

    with jail.launch(["/usr/bin/env", "-0"], env, die_with_parent=True) as launch:
        result = subprocess.run(
            launch.argv, env=launch.env, stdin=launch.stdin, capture_output=True, check=False
        )

    assert result.returncode == 0, result.stderr
    got = dict(entry.split("=", 1) for entry in result.stdout.decode().split("\0") if entry)
    assert got["TRICKY"] == env["TRICKY"] and got["EMPTY"] == ""
    assert "not-a-shell-name" not in got
    assert "TRICKY" not in launch.env  # the platform's side of the sandbox never had it
    assert set(launch.argv).isdisjoint(env.values())  # nor its command line


def test_a_home_directory_is_never_a_tool_even_when_a_python3_shim_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "python3").write_text('#!/bin/sh\nexec /usr/bin/python3 "$@"\n')
    (home / ".ssh").mkdir()
    monkeypatch.setattr(sandbox_module, "_home_directories", lambda: {home})

    tools = Sandbox("bwrap", data_dir=tmp_path / "data", search_path=str(home / "bin")).tools

    assert tools == (home / "bin",)  # the shim's folder, not the home that holds it


def test_a_folder_that_holds_the_data_dir_is_never_given_to_an_app(tmp_path: Path) -> None:
    data = tmp_path / "srv" / "shipyard"
    data.mkdir(parents=True)
    sandbox = Sandbox("bwrap", data_dir=data)

    with pytest.raises(StageFailed, match="holds Shipyard's own data"):
        sandbox.give("web", tmp_path / "srv", recursive=True)
    with pytest.raises(StageFailed, match="holds Shipyard's own data"):
        sandbox.jail("web", [Bind(tmp_path / "srv", "/storage", writable=True)], Bind(data, "/app"))


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
def test_an_apps_folder_that_is_a_link_is_refused(
    tmp_path: Path, confining_sandbox: Sandbox
) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "storage"
    link.symlink_to(target)

    with pytest.raises(StageFailed, match="is a link"):
        confining_sandbox.give("web", link, recursive=True)

    assert target.stat().st_uid == 0  # not given away through the link


@pytest.mark.skipif(not os.access("/opt", os.W_OK), reason="needs a writable /opt")
def test_a_data_dir_inside_the_oss_directories_is_hidden_and_its_app_folders_reachable(
    tmp_path: Path,
) -> None:
    root = Path(tempfile.mkdtemp(dir="/opt", prefix="shipyard-test-"))
    try:
        data = root / "data"
        source = data / "work" / "build-1" / "src"
        source.mkdir(parents=True)
        (data / "secret.key").write_text("key")
        for folder in (root, data, data / "work", data / "work" / "build-1"):
            folder.chmod(0o700)  # as the servers' umask makes them
        sandbox = Sandbox("bwrap", data_dir=data)
        if not sandbox.confines:
            pytest.skip(sandbox.describe())
        sandbox.give("web", source, recursive=True)
        place = Bind(source, str(source), writable=True)
        jail = sandbox.jail("web", [place], place)
        script = f'touch made && ls {data} && cat {data}/secret.key; echo "exit $?"'

        with jail.launch(
            ["/bin/sh", "-c", script], {"PATH": "/usr/bin:/bin"}, die_with_parent=True
        ) as launch:
            result = subprocess.run(
                launch.argv, env=launch.env, stdin=launch.stdin, capture_output=True, text=True
            )

        assert (source / "made").is_file()  # its own folder, reachable and writable
        assert "secret.key" not in result.stdout and "key\n" not in result.stdout
        assert result.stdout.strip().endswith("exit 1")  # the key is not there to read
    finally:
        shutil.rmtree(root)
