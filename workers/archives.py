"""Unpacking a tar of code (an export of a commit, an artifact) safely and readably, and finding
the layer an artifact begins with (workers/builders/layers.py writes it)."""

from __future__ import annotations

import hashlib
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

# A directory of code: readable and searchable by whoever runs it (a container's `USER`, say).
CODE_DIR_MODE = 0o755
# A layer's gzip header: FNAME (the folder it holds) and no other optional field.
_FNAME_ONLY = 0x08
_MAX_LAYER_NAME = 64
_CHUNK = 1 << 20


def code_filter(member: tarfile.TarInfo, destination: str) -> tarfile.TarInfo:
    """tarfile's `data` filter (no absolute paths, links out or devices), with directories
    0755: that filter leaves their mode to the umask, 0700 under the servers' 077, which would
    hide a Docker build context's subdirectories from an image's non-root user."""
    member = tarfile.data_filter(member, destination)
    return member.replace(mode=CODE_DIR_MODE, deep=False) if member.isdir() else member


@dataclass(frozen=True)
class FirstLayer:
    """The layer an artifact begins with: a gzip member of one folder's entries."""

    folder: str  # the top-level folder it holds, named in its gzip header
    digest: str  # sha256 of the member's bytes
    end: int  # where the member ends: the rest of the artifact begins there


def first_layer(artifact: Path) -> FirstLayer | None:
    """The layer `artifact` begins with, if it begins with one: a gzip member that names the
    folder it holds (the local builder names its dependencies' member `.python`), followed by
    more. Found by inflating that member only, to learn where it ends."""
    with artifact.open("rb") as raw:
        header = raw.read(10 + _MAX_LAYER_NAME + 1)
        if len(header) < 11 or header[:3] != b"\x1f\x8b\x08" or header[3] != _FNAME_ONLY:
            return None
        name, nul, _ = header[10:].partition(b"\x00")
        folder = name.decode("latin-1")
        if not nul or not folder or "/" in folder or folder in (".", ".."):
            return None
        raw.seek(0)
        inflate = zlib.decompressobj(wbits=31)  # one gzip member
        digest = hashlib.sha256()
        offset = 0
        while not inflate.eof:
            chunk = raw.read(_CHUNK)
            if not chunk:
                return None  # truncated: the unpack that follows says so
            try:
                inflate.decompress(chunk)
            except zlib.error:
                return None
            used = len(chunk) - len(inflate.unused_data) if inflate.eof else len(chunk)
            digest.update(chunk[:used])
            offset += used
        if offset >= artifact.stat().st_size:
            return None  # nothing follows it: a whole artifact of one member
    return FirstLayer(folder=folder, digest=f"sha256:{digest.hexdigest()}", end=offset)
