"""Where an app's repository is: a path on the host, or a URL git fetches (the CLI and the API's
schemas both ask, and the CLI imports nothing heavier for it)."""

from __future__ import annotations


def is_local_path(repo: str) -> bool:
    """Whether git reads `repo` as a path on this host: no `scheme://`, and no `host:` (scp-like
    `git@host:org/repo`) before its first `/`."""
    if "://" in repo:
        return False
    colon, slash = repo.find(":"), repo.find("/")
    return colon == -1 or -1 < slash < colon
