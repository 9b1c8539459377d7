"""Content-addressed artifact files: `sha256/<hex>.tar.gz`, read-only once stored."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from shared.exceptions import ArtifactIntegrityError

_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """`sha256:<hex>` of a file's content."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


class ArtifactStore:
    """A directory of artifacts named by their digest."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, digest: str) -> Path:
        """Where the artifact `digest` is (or would be) stored."""
        algorithm, _, hexdigest = digest.partition(":")
        if algorithm != "sha256" or len(hexdigest) != 64 or not hexdigest.isalnum():
            raise ArtifactIntegrityError(f"{digest!r} is not a sha256 digest")
        return self.root / "sha256" / f"{hexdigest}.tar.gz"

    def put(self, source: Path) -> tuple[str, int, Path]:
        """Store `source` under its digest (atomically, read-only); returns digest, size, path."""
        digest = file_digest(source)
        target = self.path_for(digest)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            shutil.copyfile(source, tmp)
            tmp.chmod(0o444)
            os.replace(tmp, target)
        return digest, target.stat().st_size, target

    def verified_path(self, digest: str) -> Path:
        """The stored file, after checking that its content still has digest `digest`."""
        path = self.path_for(digest)
        if not path.is_file():
            raise ArtifactIntegrityError(f"artifact {digest} is missing from the artifact store")
        actual = file_digest(path)
        if actual != digest:
            raise ArtifactIntegrityError(
                f"artifact file was modified: expected {digest}, found {actual}; refusing to run it"
            )
        return path

    def remove(self, digest: str) -> None:
        """Delete the stored file of `digest` (garbage collection); a missing one is fine."""
        self.path_for(digest).unlink(missing_ok=True)
