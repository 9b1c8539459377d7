"""Fixtures for the worker tests: a clean environment and a real git repository."""

from __future__ import annotations

from pathlib import Path

import pytest

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
