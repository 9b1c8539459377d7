"""Fixtures for the worker tests: a clean environment and a real git repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shipyard.workers.sandbox import Sandbox
from tests.conftest import REQUIRE_SERVICES
from tests.embedded import _no_shipyard_environment
from tests.repos import commit_files, git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository on branch main with one commit: an app at the root and one in web/."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "--quiet", "--initial-branch=main")
    commit_files(
        path,
        {
            "README.md": "root\n",
            "Procfile": "web: python app.py\n",
            "web/Procfile": "web: python server.py\n",
            "web/server.py": "print('hello')\n",
        },
        "initial",
    )
    return path


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    """The default confinement (auto), with the test's folder as the data dir: confined where
    bubblewrap works, as in CI; as the worker's user elsewhere."""
    return Sandbox("auto", data_dir=tmp_path)


@pytest.fixture
def confining_sandbox(tmp_path: Path) -> Sandbox:
    """A sandbox that confines; without bubblewrap the test is skipped, or fails under
    SHIPYARD_REQUIRE_SERVICES=1 (CI installs it)."""
    sandbox = Sandbox("bwrap", data_dir=tmp_path)
    if not sandbox.confines:
        message = f"bubblewrap cannot confine here: {sandbox.describe()}"
        if REQUIRE_SERVICES:
            pytest.fail(message + "; SHIPYARD_REQUIRE_SERVICES=1 makes this a failure")
        pytest.skip(message)
    return sandbox
