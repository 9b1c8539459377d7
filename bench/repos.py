"""Git repositories for the benchmarks: many commits made at once, handed out one at a time."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

_IDENTITY = "Shipyard Bench <bench@shipyard.invalid>"
_EPOCH = 1_700_000_000


def git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    """Run git in `repo` with no user or system config; returns stdout."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(repo),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "Shipyard Bench",
        "GIT_AUTHOR_EMAIL": "bench@shipyard.invalid",
        "GIT_COMMITTER_NAME": "Shipyard Bench",
        "GIT_COMMITTER_EMAIL": "bench@shipyard.invalid",
    }
    result = subprocess.run(
        ["git", *args], cwd=repo, env=env, input=stdin, check=True, capture_output=True
    )
    return result.stdout.decode().strip()


def _blob(data: bytes) -> bytes:
    return b"data %d\n%s\n" % (len(data), data)


def make_repo(
    path: Path, commits: int, files: dict[str, bytes], *, version_file: str = "VERSION"
) -> list[str]:
    """A repository holding `files` at its root and `commits` commits, each changing only
    `version_file` (its number).

    Made with one `git fast-import`, so thousands of commits take a second; returns their SHAs,
    oldest first.
    """
    path.mkdir(parents=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    stream = bytearray()
    for number in range(1, commits + 1):
        stream += b"commit refs/heads/main\n"
        stream += b"committer %s %d +0000\n" % (_IDENTITY.encode(), _EPOCH + number)
        stream += _blob(b"bench commit %d" % number)
        if number == 1:
            for name, content in sorted(files.items()):
                stream += b"M 644 inline %s\n" % name.encode() + _blob(content)
        stream += b"M 644 inline %s\n" % version_file.encode() + _blob(b"%d\n" % number)
    git(path, "fast-import", "--quiet", stdin=bytes(stream))
    git(path, "reset", "--quiet", "--hard", "main")
    return git(path, "rev-list", "--reverse", "main").split()


def make_app_repo(
    path: Path, app_dir: Path, commits: int, *, version_file: str = "VERSION"
) -> list[str]:
    """`make_repo` with the files of an example app (e.g. examples/hello) at the root."""
    files = {
        p.relative_to(app_dir).as_posix(): p.read_bytes()
        for p in sorted(app_dir.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }
    return make_repo(path, commits, files, version_file=version_file)


class Commits:
    """Hands out each commit of a repository once: every build of a new commit is a cache miss."""

    def __init__(self, repo: Path, shas: list[str]) -> None:
        self.repo = repo
        self._shas: Iterator[str] = iter(shas)

    def take(self, count: int = 1) -> list[str]:
        """The next `count` unused commits."""
        taken = [next(self._shas, "") for _ in range(count)]
        if not all(taken):
            raise RuntimeError(f"{self.repo} ran out of commits; make it with more")
        return taken

    def next(self) -> str:
        return self.take(1)[0]
