"""The builder interface: an exported commit in, a stored artifact out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from shipyard.workers.build_log import BuildLog


@dataclass(frozen=True)
class BuildRequest:
    """What a builder gets: the exported source of one commit and a scratch directory."""

    app: str
    commit_sha: str
    commit_timestamp: int
    source_dir: Path
    work_dir: Path
    timeout: float
    # Download caches that outlive the build (pip's under `pip/`): in the data dir, never in a
    # home directory. None: nothing is kept beyond the build's own scratch directory.
    cache_dir: Path | None = None
    # The app's folder in the commit (`source_dir` holds only it): part of what names a build.
    path: str = ""
    # Where the app's installed dependencies are kept for its next builds (Shipyard's own: no
    # build sees it). None: every build installs them.
    layer_dir: Path | None = None


@dataclass(frozen=True)
class BuiltArtifact:
    """What a builder returns: the artifact's digest, size and where it is kept."""

    digest: str
    size: int
    location: str


class Builder(Protocol):
    """Turns exported source into an immutable artifact."""

    name: str

    def build(self, request: BuildRequest, log: BuildLog) -> BuiltArtifact:
        """Build `request`, writing output to `log`; raise StageFailed with the reason."""
        ...

    def has(self, app: str, artifact_id: str) -> bool:
        """Whether the artifact can still be run (a build cache hit is only one then)."""
        ...

    def remove(self, app: str, artifact_id: str) -> None:
        """Delete app `app`'s garbage-collected artifact; one already gone is fine."""
        ...
