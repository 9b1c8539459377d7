"""The noop builder: every code path of a build but the build itself, for benchmarks.

The artifact is real (a tiny reproducible tar.gz in the content-addressed store, named by its
digest), so releases and runners verify it as they verify any other; only the build command
is skipped. `SHIPYARD_NOOP_BUILD_SECONDS` makes each build wait that long first, standing for
an I/O-bound build (the build-farm benchmark).
"""

from __future__ import annotations

import os
import shutil
import time

from shipyard.shared import constants
from shipyard.shared.artifacts import ArtifactStore
from shipyard.shared.exceptions import StageFailed
from shipyard.workers.build_log import BuildLog
from shipyard.workers.builders.base import BuildRequest, BuiltArtifact
from shipyard.workers.builders.local import pack_reproducibly

# Read by the build worker, so a benchmark sets it on the build pool alone.
WAIT_VARIABLE = "SHIPYARD_NOOP_BUILD_SECONDS"


def build_wait_seconds() -> float:
    """How long each noop build waits: `SHIPYARD_NOOP_BUILD_SECONDS`, default 0."""
    raw = os.environ.get(WAIT_VARIABLE, "").strip()
    if not raw:
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        raise StageFailed(f"{WAIT_VARIABLE} must be a number of seconds") from None
    if not 0 <= seconds <= constants.BUILD_TIMEOUT_SECONDS:
        raise StageFailed(f"{WAIT_VARIABLE} must be between 0 and the build timeout")
    return seconds


class NoopBuilder:
    """Stores a small artifact derived from the commit alone: same commit, same digest."""

    name = "noop"

    def __init__(self, store: ArtifactStore, wait_seconds: float = 0.0) -> None:
        self._store = store
        self._wait_seconds = wait_seconds

    def build(self, request: BuildRequest, log: BuildLog) -> BuiltArtifact:
        if self._wait_seconds:
            log.write(f"-----> Noop build: waiting {self._wait_seconds:g}s")
            time.sleep(self._wait_seconds)
        contents = request.work_dir / "noop-artifact"
        contents.mkdir()
        (contents / "COMMIT").write_text(request.commit_sha + "\n")
        procfile = request.source_dir / constants.PROCFILE
        if procfile.is_file():  # keep the app's process types, for runners that read them
            shutil.copyfile(procfile, contents / constants.PROCFILE)
        tarball = request.work_dir / "artifact.tar.gz"
        pack_reproducibly(contents, tarball, mtime=request.commit_timestamp)
        stored = self._store.put(tarball, app=request.app)
        log.write(f"-----> Noop artifact {stored.digest} ({stored.size} bytes)")
        return BuiltArtifact(digest=stored.digest, size=stored.size, location=stored.location)

    def has(self, app: str, artifact_id: str) -> bool:
        return self._store.has(artifact_id, app=app)

    def remove(self, app: str, artifact_id: str) -> None:
        self._store.remove(artifact_id, app=app)
