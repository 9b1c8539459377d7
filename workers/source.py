"""Source checkout: resolve a ref to one commit and export exactly that commit (`git archive`)."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from shipyard.shared.constants import GIT_TIMEOUT_SECONDS
from shipyard.shared.exceptions import StageFailed
from shipyard.shared.schemas import strip_credentials

_GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",  # never wait for a password on a private URL
    "GIT_CONFIG_NOSYSTEM": "1",
    "LANG": "C.UTF-8",
}


@dataclass(frozen=True)
class Commit:
    """A resolved commit: the repository holding it, its SHA and its commit time."""

    git_dir: str
    sha: str
    timestamp: int


def _git(*args: str, cwd: str | None = None, timeout: float = GIT_TIMEOUT_SECONDS) -> bytes:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent", **_GIT_ENV}
    command = ["git", "-c", "safe.directory=*", *args]
    try:
        result = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise StageFailed(f"git {args[0]} timed out after {timeout:.0f}s") from exc
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        last = strip_credentials(message[-1]) if message else "no output"
        raise StageFailed(f"git {args[0]} failed: {last}")
    return result.stdout


def _local_repository(repo: str) -> str | None:
    path = Path(repo).expanduser()
    return str(path) if path.is_dir() else None


def _mirror(repo: str, mirror_root: Path) -> str:
    """A bare mirror of a remote repository, fetched up to date."""
    mirror = mirror_root / (hashlib.sha256(repo.encode()).hexdigest()[:24] + ".git")
    if mirror.is_dir():
        _git("-C", str(mirror), "fetch", "--prune", "--quiet", "origin", "+refs/*:refs/*")
    else:
        mirror_root.mkdir(parents=True, exist_ok=True)
        _git("clone", "--mirror", "--quiet", "--", repo, str(mirror))
    return str(mirror)


def resolve(repo: str, ref: str, mirror_root: Path) -> Commit:
    """The commit `ref` names in `repo` (a local path or a URL)."""
    git_dir = _local_repository(repo) or _mirror(repo, mirror_root)
    try:
        # One git process for both: the commit's SHA and its commit time.
        resolved = _git(
            "-C",
            git_dir,
            "log",
            "-1",
            "--no-walk",
            "--format=%H %ct",
            "--end-of-options",
            f"{ref}^{{commit}}",
            "--",
        ).split()
        sha, timestamp = resolved[0].decode(), int(resolved[1])
    except (StageFailed, IndexError, ValueError) as exc:
        raise StageFailed(
            f"ref {ref!r} does not name a commit in {strip_credentials(repo)}"
        ) from exc
    return Commit(git_dir=git_dir, sha=sha, timestamp=timestamp)


def export(commit: Commit, subpath: str, destination: Path) -> None:
    """Write the files of `commit` (below `subpath`) into `destination`; nothing uncommitted."""
    treeish = f"{commit.sha}:{subpath}" if subpath else commit.sha
    try:
        archive = _git("-C", commit.git_dir, "archive", "--format=tar", treeish)
    except StageFailed as exc:
        raise StageFailed(f"path {subpath!r} does not exist at commit {commit.sha[:12]}") from exc
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        try:
            tar.extractall(destination, filter="data")
        except tarfile.FilterError as exc:
            raise StageFailed(f"commit {commit.sha[:12]} cannot be exported safely: {exc}") from exc
