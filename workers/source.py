"""Source checkout: resolve a ref to one commit and export exactly that commit (`git archive`).

Git never runs inside a registered repository: a repository's own `.git` (its config, hooks and
`info/attributes`) can make git run programs (`core.fsmonitor`, `gpg.program` with
`log.showSignature`, a `filter.<driver>.smudge` that `git archive` applies, hooks…). As git's own
security guidance advises, every repository, local ones included, is first copied into a
Shipyard-owned bare mirror with `git clone --mirror --no-local` (through `upload-pack`, which obeys
only the config git allows it to), and every other command runs in that mirror, with system and
global config ignored and the keys that execute programs pinned on the command line. No
`safe.directory=*`: the mirrors are Shipyard's own, so git's ownership check stays on for them.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shipyard.shared.constants import GIT_TIMEOUT_SECONDS
from shipyard.shared.exceptions import StageFailed
from shipyard.shared.schemas import strip_credentials
from shipyard.workers.archives import code_filter

_GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",  # never wait for a password on a private URL
    "GIT_CONFIG_NOSYSTEM": "1",  # no /etc/gitconfig (nor ~/.gitconfig: see _git)
    "GIT_NO_REPLACE_OBJECTS": "1",  # a mirrored refs/replace/* must not swap a commit's content
    "GIT_NO_LAZY_FETCH": "1",  # upload-pack never fetches on a partial clone's behalf
    "LANG": "C.UTF-8",
}
# Command-line config outranks a repository's own: every key that makes git run a program is
# pinned to a value that runs nothing (or to plain `ssh`), in case a mirror's config ever held one.
_NEUTRAL_CONFIG = (
    "core.fsmonitor=false",
    f"core.hooksPath={os.devnull}",
    "core.askPass=",
    "core.sshCommand=ssh",
    "credential.helper=",
    "log.showSignature=false",
    "gpg.program=false",
    "gpg.openpgp.program=false",
    "gpg.x509.program=false",
    "gpg.ssh.program=false",
    "protocol.ext.allow=never",
)


# Where a mirror keeps its source's HEAD, fetched with every update.
SOURCE_HEAD = "refs/shipyard/source-head"
_SOURCE_HEAD_REF = re.compile(r"^HEAD(?=$|[~^@:])")


@dataclass(frozen=True)
class Commit:
    """A resolved commit: the mirror holding it, its SHA and its commit time."""

    git_dir: str
    sha: str
    timestamp: int


def _git(*args: str, git_dir: str | None = None, global_config: str = os.devnull) -> bytes:
    """Run git in `git_dir` (a mirror), with the neutral environment and config."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "GIT_CONFIG_GLOBAL": global_config,
        **_GIT_ENV,
    }
    command = ["git", *(part for key in _NEUTRAL_CONFIG for part in ("-c", key))]
    command += [f"--git-dir={git_dir}", *args] if git_dir else list(args)
    try:
        result = subprocess.run(
            command, env=env, capture_output=True, timeout=GIT_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise StageFailed(f"git {args[0]} timed out after {GIT_TIMEOUT_SECONDS:.0f}s") from exc
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        last = strip_credentials(message[-1]) if message else "no output"
        raise StageFailed(f"git {args[0]} failed: {last}")
    return result.stdout


def _local_repository(repo: str) -> str | None:
    path = Path(repo).expanduser()
    return str(path.resolve()) if path.is_dir() else None


def _trust_only(repository: str, config_file: Path) -> str:
    """A global config naming `repository` alone as a safe.directory, for the upload-pack that
    a clone or fetch runs in it (git passes no `-c` to it). The repository may belong to another
    user: registering it was an admin's decision, and upload-pack obeys only the config git
    allows it to."""
    lines = ["[safe]"]
    for path in (repository, f"{repository}/.git"):
        quoted = path.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'\tdirectory = "{quoted}"')
    config_file.write_text("\n".join(lines) + "\n")
    return str(config_file)


@contextmanager
def _mirror_lock(mirror: Path) -> Iterator[None]:
    # Two builds of one app (two environments) may update its mirror at once.
    with open(f"{mirror}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _mirror(repo: str, mirror_root: Path) -> str:
    """A bare mirror of `repo` (a URL, or a local repository), fetched up to date, its source's
    HEAD (the checked-out commit of a local repository, even detached) at SOURCE_HEAD."""
    local = _local_repository(repo)
    source = local or repo
    mirror = mirror_root / (hashlib.sha256(source.encode()).hexdigest()[:24] + ".git")
    mirror_root.mkdir(parents=True, exist_ok=True)
    with _mirror_lock(mirror):
        trust = _trust_only(local, Path(f"{mirror}.gitconfig")) if local else os.devnull
        if not mirror.is_dir():
            # Cloned aside and renamed: a clone killed halfway leaves no mirror behind.
            partial = mirror.with_name(f"{mirror.name}.partial")
            shutil.rmtree(partial, ignore_errors=True)
            # --no-local: objects go through upload-pack, never hard links or a copy of `.git`.
            clone = ("clone", "--mirror", "--no-local", "--quiet", "--", source, str(partial))
            _git(*clone, global_config=trust)
            partial.rename(mirror)
        # A mirror's own HEAD is set once, by the clone: the source's is fetched every time.
        refspecs = ("+refs/*:refs/*", f"+HEAD:{SOURCE_HEAD}")
        fetch = ("fetch", "--prune", "--quiet", "--no-write-fetch-head", "origin", *refspecs)
        _git(*fetch, git_dir=str(mirror), global_config=trust)
    return str(mirror)


def _in_mirror(ref: str) -> str:
    """`ref` as the mirror names it: `HEAD` (and `HEAD~1`, …) is the source's, not the mirror's."""
    return _SOURCE_HEAD_REF.sub(SOURCE_HEAD, ref)


def resolve(repo: str, ref: str, mirror_root: Path) -> Commit:
    """The commit `ref` names in `repo` (a local path or a URL)."""
    git_dir = _mirror(repo, mirror_root)
    try:
        # One git process for both: the commit's SHA and its commit time.
        resolved = _git(
            "log",
            "-1",
            "--no-walk",
            "--format=%H %ct",
            "--end-of-options",
            f"{_in_mirror(ref)}^{{commit}}",
            "--",
            git_dir=git_dir,
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
        archive = _git("archive", "--format=tar", treeish, git_dir=commit.git_dir)
    except StageFailed as exc:
        raise StageFailed(f"path {subpath!r} does not exist at commit {commit.sha[:12]}") from exc
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        try:
            tar.extractall(destination, filter=code_filter)
        except tarfile.FilterError as exc:
            raise StageFailed(f"commit {commit.sha[:12]} cannot be exported safely: {exc}") from exc
