"""The artifact store interface: what a stored artifact is, and what every backend offers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class StoredArtifact:
    """An artifact once stored: its digest, size in bytes, and where it is (for people)."""

    digest: str
    size: int
    location: str


class ImageRegistry(Protocol):
    """Where the Docker builder pushes images and the Docker runner pulls them from."""

    def image_repository(self, app: str) -> str:
        """`host[:port]/namespace/app`, as Docker names the app's repository."""
        ...

    def docker_auth(self) -> dict[str, str] | None:
        """Credentials in the Docker Engine API's form (None: anonymous)."""
        ...

    def has_image(self, app: str, digest: str) -> bool:
        """Whether the app's repository still holds the image manifest `digest`."""
        ...

    def delete_image(self, app: str, digest: str) -> None:
        """Delete the image manifest `digest` from the app's repository; a gone one is fine."""
        ...


class ArtifactStore(Protocol):
    """Keeps artifact files by digest; the digest is verified before anything runs them."""

    @property
    def images(self) -> ImageRegistry | None:
        """The registry for Docker images, or None when images stay in their engine."""
        ...

    def put(self, source: Path, *, app: str) -> StoredArtifact:
        """Store `source` under its content digest (idempotent)."""
        ...

    def fetch(self, digest: str, *, app: str) -> Path:
        """A local file with the artifact's content, verified against `digest`."""
        ...

    def has(self, digest: str, *, app: str) -> bool:
        """Whether the store still holds the artifact (a cache hit must be runnable)."""
        ...

    def remove(self, digest: str, *, app: str) -> None:
        """Delete the artifact (garbage collection); one already gone is fine."""
        ...
