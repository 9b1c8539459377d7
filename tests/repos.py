"""Real git repositories for the worker tests, made with a fixed identity and no user config."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` with a fixed identity and no user or system config; returns stdout."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(repo),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "Shipyard Tests",
        "GIT_AUTHOR_EMAIL": "tests@shipyard.invalid",
        "GIT_COMMITTER_NAME": "Shipyard Tests",
        "GIT_COMMITTER_EMAIL": "tests@shipyard.invalid",
    }
    result = subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    )
    return result.stdout.strip()


def commit_files(repo: Path, files: dict[str, str], message: str = "change") -> str:
    """Write `files` (relative path → content) in `repo`, commit them, return the commit SHA."""
    for name, content in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")
