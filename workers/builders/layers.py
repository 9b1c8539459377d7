"""Layers: a folder of the built tree (the installed dependencies) packed on its own, first in
the artifact, and reused by the app's next build that would install the same thing.

An artifact is a tar.gz. A gzip file may hold several members one after the other (RFC 1952)
and a tar archive is its entries one after the other, then an end marker; so an artifact can be
the gzip member of the layer's entries (no end marker) followed by the member of the rest of the
tree (with the marker): one ordinary tar.gz that any tool unpacks, whose first member has the
same bytes in every build that installed the same dependencies. A build whose requirements did
not change copies that member from this host's cache instead of installing again, and compresses
only its code. The layer's entries carry a fixed time, not the commit's, so that they do not
change from commit to commit.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import stat
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shipyard.shared.artifacts.files import file_digest
from shipyard.shared.exceptions import StageFailed
from shipyard.workers.archives import code_filter

# The time of every entry of a layer: 1980-01-01, the earliest a zip (a wheel) can record.
LAYER_MTIME = 315_532_800
# The newest layers kept per app on a build host; older ones are removed as new ones arrive.
KEPT_LAYERS = 3
_MEMBER = ".tar.gz"
_DIGEST = ".sha256"

# (path, inode, change time, size, mode) of each entry below a folder. The change time cannot
# be set by a program, so a file rewritten in place with its old size and time still differs.
Snapshot = tuple[tuple[str, int, int, int, int], ...]


@dataclass
class Layer:
    """A folder of the tree and the gzip member its entries are packed in."""

    folder: str  # relative to the tree's root
    member: Path
    digest: str  # sha256 of the member's bytes
    key: str | None  # the cache key it is stored under once the build passed its checks
    reused: bool  # taken from the cache: nothing installed it in this build
    state: Snapshot | None = None  # the folder as packed, while it is in the tree


def snapshot(folder: Path) -> Snapshot:
    """`folder` and what is below it now, links never followed (a folder replaced by a link, or
    moved away and back, differs); empty if it is not a folder, or changed while looked at."""
    try:
        top = os.lstat(folder)
        if not stat.S_ISDIR(top.st_mode):
            return ()
        entries = [(".", top.st_ino, top.st_ctime_ns, top.st_size, top.st_mode)]
        for directory, subdirectories, files in os.walk(folder, onerror=_raise):
            for name in [*subdirectories, *files]:
                path = os.path.join(directory, name)
                info = os.lstat(path)
                relative = os.path.relpath(path, folder)
                entries.append(
                    (relative, info.st_ino, info.st_ctime_ns, info.st_size, info.st_mode)
                )
    except OSError:
        return ()
    return tuple(sorted(entries))


def _raise(error: OSError) -> None:
    raise error


def _normalise(info: tarfile.TarInfo, mtime: int) -> tarfile.TarInfo:
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    executable = info.isdir() or bool(info.mode & stat.S_IXUSR)
    info.mode = 0o755 if executable else 0o644
    return info


def add_entries(tar: tarfile.TarFile, root: Path, paths: Iterable[Path], mtime: int) -> None:
    """Add `paths` (below `root`) to `tar` in the given order, with fixed times and owners."""
    for path in paths:
        arcname = path.relative_to(root).as_posix()
        info = _normalise(tar.gettarinfo(str(path), arcname), mtime)
        if info.isfile():
            with path.open("rb") as handle:
                tar.addfile(info, handle)
        else:
            tar.addfile(info)


def sorted_below(root: Path, *, top: str | None = None, without: str | None = None) -> list[Path]:
    """The paths below `root` (or only `top` and what is below it), sorted by their relative
    name; without the top-level entry `without` and what is below it."""
    start = root / top if top is not None else root
    paths = [start, *start.rglob("*")] if top is not None else list(root.rglob("*"))
    if without is not None:
        paths = [p for p in paths if p.relative_to(root).parts[0] != without]
    return sorted(paths, key=lambda p: p.relative_to(root).as_posix())


def gzip_member(raw: BinaryIO, name: str = "") -> gzip.GzipFile:
    """A gzip member written to `raw` whose bytes depend only on what is written to it (and
    `name`, kept in its header: a layer's folder, by which runners know it)."""
    return gzip.GzipFile(filename=name, mode="wb", fileobj=raw, mtime=0, compresslevel=6)


def pack_layer(tree: Path, folder: str, target: Path) -> Layer:
    """The gzip member of `folder`'s entries (the folder first), with no end-of-archive marker:
    more entries follow it in the artifact."""
    paths = sorted_below(tree, top=folder)
    with target.open("wb") as raw, gzip_member(raw, folder) as gz:
        # Not closed: closing a TarFile writes the end-of-archive marker, which comes last.
        tar = tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT)
        add_entries(tar, tree, paths, LAYER_MTIME)
    return Layer(folder=folder, member=target, digest=file_digest(target), key=None, reused=False)


def pack_layered(tree: Path, layer: Layer, target: Path, *, mtime: int) -> None:
    """The artifact: `layer`'s member, then the member of the rest of `tree` (entries with
    time `mtime`) ending the archive."""
    with target.open("wb") as raw:
        with layer.member.open("rb") as member:
            shutil.copyfileobj(member, raw, 1 << 20)
        with (
            gzip_member(raw) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
        ):
            add_entries(tar, tree, sorted_below(tree, without=layer.folder), mtime)


def unpack_layer(layer: Layer, tree: Path) -> None:
    """Put the layer's folder back into `tree`."""
    try:
        with tarfile.open(layer.member, "r:gz") as tar:
            tar.extractall(tree, filter=code_filter)
    except (OSError, tarfile.TarError) as exc:
        raise StageFailed(f"the cached dependencies could not be unpacked ({exc})") from exc


class LayerCache:
    """One app's layers on this build host, by key: Shipyard's own files, which no build
    sees."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _paths(self, key: str) -> tuple[Path, Path]:
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"{key!r} is not a layer key")
        return self.root / f"{key}{_MEMBER}", self.root / f"{key}{_DIGEST}"

    def get(self, key: str, folder: str) -> Layer | None:
        """The layer stored under `key`, if it is here whole and unchanged."""
        member, digest_file = self._paths(key)
        try:
            digest = digest_file.read_text().strip()
        except OSError:
            return None
        if not member.is_file() or file_digest(member) != digest:
            member.unlink(missing_ok=True)  # damaged: installed again, and stored again
            digest_file.unlink(missing_ok=True)
            return None
        os.utime(digest_file)  # recently used: kept the longest
        return Layer(folder=folder, member=member, digest=digest, key=key, reused=True)

    def put(self, layer: Layer) -> None:
        """Keep `layer` under its key (atomically; another build storing it too is fine), and
        remove the app's least recently used layers beyond KEPT_LAYERS."""
        if layer.key is None:
            return
        member, digest_file = self._paths(layer.key)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        suffix = f".{os.getpid()}.tmp"
        temporary = member.with_name(member.name + suffix)
        shutil.copyfile(layer.member, temporary)
        os.replace(temporary, member)
        temporary = digest_file.with_name(digest_file.name + suffix)
        temporary.write_text(layer.digest + "\n")
        os.replace(temporary, digest_file)  # last: a member without it is never used
        self._prune()

    def _prune(self) -> None:
        def last_used(path: Path) -> int:
            try:
                return path.stat().st_mtime_ns
            except OSError:
                return 0  # removed meanwhile by another build's prune

        kept = sorted(self.root.glob(f"*{_DIGEST}"), key=last_used, reverse=True)
        for digest_file in kept[KEPT_LAYERS:]:
            key = digest_file.name.removesuffix(_DIGEST)
            digest_file.unlink(missing_ok=True)
            (self.root / f"{key}{_MEMBER}").unlink(missing_ok=True)


def layer_key(*parts: bytes | str) -> str:
    """A cache key from what decides a layer's content."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(b"%d:" % len(data) + data)
    return digest.hexdigest()
