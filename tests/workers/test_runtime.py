"""What an artifact asks of its host: the python3 probe, asked once a minute, not at every start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shipyard.workers import runtime
from shipyard.workers.runtime import find_python3
from shipyard.workers.sandbox import Bind, Sandbox

FAKE_PYTHON = """#!/bin/sh
echo asked >> "{calls}"
echo 3.11
echo True
echo /opt/fake/python3
"""


def test_the_probes_answer_is_reused_for_the_same_question_then_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools, app = tmp_path / "bin", tmp_path / "app"
    tools.mkdir()
    app.mkdir()
    calls = tmp_path / "calls"
    (tools / "python3").write_text(FAKE_PYTHON.format(calls=calls))
    (tools / "python3").chmod(0o755)
    place = Bind(app, str(app))
    jail = Sandbox("off", data_dir=tmp_path / "data").jail("web", [place], place)
    env = {"PATH": f"{tools}:{os.environ['PATH']}"}

    first = find_python3(jail, env)
    again = find_python3(jail, env)
    (app / ".python-version").write_text("3.12\n")  # pyenv would answer another python3
    pinned = find_python3(jail, env)
    monkeypatch.setattr(runtime, "PROBE_REUSE_SECONDS", 0.0)
    expired = find_python3(jail, env)

    assert first == again == pinned == expired
    assert first.version == "3.11" and first.executable == "/opt/fake/python3"
    assert calls.read_text().splitlines() == ["asked"] * 3  # first, pinned, expired
