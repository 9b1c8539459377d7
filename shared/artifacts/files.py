"""Content-addressed artifact files: `sha256/<hex>.tar.gz`, read-only once stored.

The embedded default's artifact store, and each run host's cache of what it pulled from a
registry.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from pathlib import Path

from shipyard.shared.artifacts.store import StoredArtifact
from shipyard.shared.exceptions import ArtifactIntegrityError

_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """`sha256:<hex>` of a file's content."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def check_digest(digest: str) -> str:
    """The hex part of a `sha256:<hex>` digest; anything else is refused."""
    algorithm, _, hexdigest = digest.partition(":")
    if (
        algorithm != "sha256"
        or len(hexdigest) != 64
        or not all(c in "0123456789abcdef" for c in hexdigest)
    ):
        raise ArtifactIntegrityError(f"{digest!r} is not a sha256 digest")
    return hexdigest


class FileStore:
    """A directory of artifacts named by their digest."""

    images = None  # Docker images stay in the engine that built them

    def __init__(self, root: Path) -> None:
        self.root = root

    def __str__(self) -> str:
        return f"file://{self.root}"

    def path_for(self, digest: str) -> Path:
        """Where the artifact `digest` is (or would be) stored."""
        return self.root / "sha256" / f"{check_digest(digest)}.tar.gz"

    def temporary_path(self, digest: str) -> Path:
        """A private name beside `digest`'s file, for writing it before it is complete."""
        target = self.path_for(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")

    def adopt(self, digest: str, complete: Path) -> Path:
        """Make the complete, verified file `complete` the stored copy of `digest` (atomically,
        read-only); another process storing the same content at the same time is fine."""
        target = self.path_for(digest)
        complete.chmod(0o444)
        os.replace(complete, target)
        return target

    def put(self, source: Path, *, app: str) -> StoredArtifact:
        """Store `source` under its digest; `app` does not matter to a directory."""
        digest = file_digest(source)
        target = self.path_for(digest)
        if not target.exists():
            tmp = self.temporary_path(digest)
            shutil.copyfile(source, tmp)
            self.adopt(digest, tmp)
        return StoredArtifact(digest=digest, size=target.stat().st_size, location=str(target))

    def fetch(self, digest: str, *, app: str) -> Path:
        """The stored file, after checking that its content still has digest `digest`."""
        path = self.path_for(digest)
        if not path.is_file():
            raise ArtifactIntegrityError(
                f"artifact {digest} is missing from the artifact store {self}"
            )
        actual = file_digest(path)
        if actual != digest:
            raise ArtifactIntegrityError(
                f"artifact file was modified: expected {digest}, found {actual}; refusing to run it"
            )
        return path

    def has(self, digest: str, *, app: str) -> bool:
        return self.path_for(digest).is_file()

    def remove(self, digest: str, *, app: str) -> None:
        """Delete the stored file of `digest` (garbage collection); a missing one is fine."""
        self.path_for(digest).unlink(missing_ok=True)
