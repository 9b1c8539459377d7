"""Procfile and shipyard.toml: what the app declares, and clear failures when it is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.shared.exceptions import StageFailed
from shipyard.shared.manifest import BuildManifest, read_build_manifest, read_procfile


def test_a_procfile_lists_process_types_skipping_comments_and_blank_lines(
    tmp_path: Path,
) -> None:
    (tmp_path / "Procfile").write_text(
        "# processes\n\nweb: python app.py --port $PORT\nworker:python worker.py\n"
    )

    assert read_procfile(tmp_path) == {
        "web": "python app.py --port $PORT",
        "worker": "python worker.py",
    }


def test_a_missing_procfile_fails_with_an_example(tmp_path: Path) -> None:
    with pytest.raises(StageFailed, match="no Procfile.*web: python app.py"):
        read_procfile(tmp_path)


def test_a_procfile_without_web_fails(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text("worker: python worker.py\n")

    with pytest.raises(StageFailed, match="no 'web' process"):
        read_procfile(tmp_path)


def test_a_malformed_procfile_line_is_named_by_number(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text("web: python app.py\nthis is not a process\n")

    with pytest.raises(StageFailed, match="Procfile line 2 is not 'type: command'"):
        read_procfile(tmp_path)


def test_a_binary_procfile_fails(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_bytes(b"web: \xff\xfe\n")

    with pytest.raises(StageFailed, match="not UTF-8"):
        read_procfile(tmp_path)


def test_without_shipyard_toml_the_build_manifest_is_empty(tmp_path: Path) -> None:
    assert read_build_manifest(tmp_path) == BuildManifest(command=None, timeout=None)


def test_the_build_table_gives_command_and_timeout(tmp_path: Path) -> None:
    (tmp_path / "shipyard.toml").write_text('[build]\ncommand = "make"\ntimeout = 90\n')

    assert read_build_manifest(tmp_path) == BuildManifest(command="make", timeout=90.0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[build\n", "not valid TOML"),
        ('build = "make"\n', r"\[build\] in shipyard.toml must be a table"),
        ("[build]\ncommand = 3\n", "build.command must be a string"),
        ("[build]\ntimeout = -1\n", "build.timeout must be a positive number"),
        ('[build]\ntimeout = "10"\n', "build.timeout must be a positive number"),
        # TOML booleans are not durations, although Python's bool is an int.
        ("[build]\ntimeout = true\n", "build.timeout must be a positive number"),
    ],
)
def test_an_invalid_shipyard_toml_fails_clearly(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "shipyard.toml").write_text(content)

    with pytest.raises(StageFailed, match=message):
        read_build_manifest(tmp_path)
