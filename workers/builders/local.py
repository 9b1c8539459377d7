"""The local builder: the app's build command in a scrubbed sandbox, then a reproducible tar.gz."""

from __future__ import annotations

import gzip
import os
import signal
import stat
import subprocess
import tarfile
import threading
from pathlib import Path

from shared.artifact_store import ArtifactStore
from shared.exceptions import StageFailed
from shared.manifest import read_build_manifest
from workers.build_log import BuildLog
from workers.builders.base import BuildRequest, BuiltArtifact


class LocalBuilder:
    """Builds on the worker's own host; the artifact lands in the content-addressed store."""

    name = "local"

    def __init__(self, store: ArtifactStore) -> None:
        self._store = store

    def build(self, request: BuildRequest, log: BuildLog) -> BuiltArtifact:
        manifest = read_build_manifest(request.source_dir)
        if manifest.command:
            timeout = min(manifest.timeout or request.timeout, request.timeout)
            log.write(f"-----> Running build command: {manifest.command}")
            run_build_command(manifest.command, request, timeout, log)
        else:
            log.write("-----> No build command declared (shipyard.toml [build] command)")
        tarball = request.work_dir / "artifact.tar.gz"
        pack_reproducibly(request.source_dir, tarball, mtime=request.commit_timestamp)
        digest, size, path = self._store.put(tarball)
        log.write(f"-----> Artifact {digest} ({size} bytes)")
        return BuiltArtifact(digest=digest, size=size, location=str(path))

    def remove(self, artifact_id: str) -> None:
        self._store.remove(artifact_id)


def scrubbed_environment(request: BuildRequest, home: Path) -> dict[str, str]:
    """The build's whole environment: no config var, no secret, nothing of the worker's own."""
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "SOURCE_VERSION": request.commit_sha,
        # Tools that honour it (py_compile, pip wheels, tar) then write reproducible output.
        "SOURCE_DATE_EPOCH": str(request.commit_timestamp),
    }


def run_build_command(command: str, request: BuildRequest, timeout: float, log: BuildLog) -> None:
    """Run `command` in the source dir; stream its output to `log`; kill its group on timeout."""
    home = request.work_dir / "home"
    home.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        ["/bin/sh", "-c", command],
        cwd=request.source_dir,
        env=scrubbed_environment(request, home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert process.stdout is not None
    stream = process.stdout

    def pump() -> None:
        for line in stream:
            log.write(line.decode(errors="replace"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    code: int | None = None
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    finally:
        # Nothing the command started outlives the build (or holds its output pipe open).
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
        reader.join(timeout=5)
        if not reader.is_alive():
            stream.close()
    if code is None:
        raise StageFailed(f"build command timed out after {timeout:.0f}s and was killed")
    if code != 0:
        raise StageFailed(f"build command exited with status {code} (see the build log)")


def _normalise(info: tarfile.TarInfo, mtime: int) -> tarfile.TarInfo:
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    executable = info.isdir() or bool(info.mode & stat.S_IXUSR)
    info.mode = 0o755 if executable else 0o644
    return info


def pack_reproducibly(source: Path, target: Path, *, mtime: int) -> None:
    """A tar.gz whose bytes depend only on the files: sorted entries, fixed times and owners."""
    paths = sorted(source.rglob("*"), key=lambda p: p.relative_to(source).as_posix())
    with target.open("wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
                for path in paths:
                    arcname = path.relative_to(source).as_posix()
                    info = _normalise(tar.gettarinfo(str(path), arcname), mtime)
                    if info.isfile():
                        with path.open("rb") as handle:
                            tar.addfile(info, handle)
                    else:
                        tar.addfile(info)
