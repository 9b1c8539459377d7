"""Unpacking a tar of code (an export of a commit, an artifact) safely and readably."""

from __future__ import annotations

import tarfile

# A directory of code: readable and searchable by whoever runs it (a container's `USER`, say).
CODE_DIR_MODE = 0o755


def code_filter(member: tarfile.TarInfo, destination: str) -> tarfile.TarInfo:
    """tarfile's `data` filter (no absolute paths, links out or devices), with directories
    0755: that filter leaves their mode to the umask, 0700 under the servers' 077, which would
    hide a Docker build context's subdirectories from an image's non-root user."""
    member = tarfile.data_filter(member, destination)
    return member.replace(mode=CODE_DIR_MODE, deep=False) if member.isdir() else member
