"""The local builder: a detected buildpack and the app's build command in a scrubbed sandbox, a
relocatability check, then a reproducible tar.gz."""

from __future__ import annotations

import os
import signal
import subprocess
import tarfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from shipyard.shared.artifacts import ArtifactStore
from shipyard.shared.exceptions import StageFailed
from shipyard.shared.manifest import BuildManifest, read_build_manifest
from shipyard.workers.build_log import BuildLog
from shipyard.workers.builders.base import BuildRequest, BuiltArtifact
from shipyard.workers.builders.layers import (
    Layer,
    LayerCache,
    add_entries,
    gzip_member,
    pack_layered,
    snapshot,
    sorted_below,
    unpack_layer,
)
from shipyard.workers.builders.relocatable import check_relocatable
from shipyard.workers.runtime import with_profile
from shipyard.workers.sandbox import Bind, Jail, Sandbox

DOCKERFILE = "Dockerfile"


class Buildpack(Protocol):
    """Installs what a kind of app needs into its tree, before any build command runs."""

    name: str

    def detect(self, source_dir: Path) -> str | None:
        """The file that makes the exported source an app of this kind, if it is one."""
        ...

    def compile(
        self,
        request: BuildRequest,
        jail: Jail,
        timeout: float,
        log: BuildLog,
        layers: LayerCache | None,
    ) -> Layer | None:
        """Install into `request.source_dir` within `timeout`, running what it runs in `jail`;
        raise StageFailed with the reason. Returns the layer of what it installed, if it makes
        one: taken from `layers` (and then not in the tree) when it installed the same before."""
        ...

    def uses_installed(self, source_dir: Path, manifest: BuildManifest) -> bool:
        """Whether `finish` runs what was installed (a reused layer is unpacked for it)."""
        ...

    def changed(self, request: BuildRequest, jail: Jail, timeout: float, log: BuildLog) -> None:
        """The app's own build command changed what `compile` installed (its layer's folder):
        make what was derived from it consistent again."""
        ...

    def finish(
        self,
        request: BuildRequest,
        manifest: BuildManifest,
        jail: Jail,
        timeout: float,
        log: BuildLog,
    ) -> None:
        """What this kind of app gets once installed, before the app's own build command (a
        Django app's collectstatic)."""
        ...

    def declared(self, source_dir: Path) -> str | None:
        """What the app declares it needs of this kind (the file that says so), read from the
        exported commit before anything of the app runs; None: nothing."""
        ...

    def check_built(self, source_dir: Path, declared: str) -> None:
        """Refuse (StageFailed) a built tree that lacks what the app declared it needs, whoever
        built it (this buildpack, or the app's own command)."""
        ...


class LocalBuilder:
    """Builds on the worker's own host; the artifact lands in the content-addressed store."""

    name = "local"

    def __init__(
        self, store: ArtifactStore, sandbox: Sandbox, buildpacks: Sequence[Buildpack] = ()
    ) -> None:
        self._store = store
        self._sandbox = sandbox
        self._buildpacks = tuple(buildpacks)

    def build(self, request: BuildRequest, log: BuildLog) -> BuiltArtifact:
        manifest = read_build_manifest(request.source_dir)
        # One limit for the whole build: the buildpack's install and the command share it.
        deadline = time.monotonic() + min(manifest.timeout or request.timeout, request.timeout)
        buildpack = self.buildpack_for(request.source_dir, manifest)
        # Read from the commit as exported, before any of the app's code runs here.
        declared = [(p, d) for p in self._buildpacks if (d := p.declared(request.source_dir))]
        jail = build_jail(self._sandbox, request)
        if (request.source_dir / DOCKERFILE).exists():
            log.write(
                "-----> Dockerfile present: the local builder does not use it "
                "(an app created with `--builder docker` is built from it)"
            )
        layer: Layer | None = None
        if buildpack is not None:
            marker = buildpack.detect(request.source_dir)
            log.write(f"-----> {buildpack.name} app detected ({marker})")
            remaining = max(deadline - time.monotonic(), 0.0)
            cache = LayerCache(request.layer_dir) if request.layer_dir is not None else None
            layer = buildpack.compile(request, jail, remaining, log, cache)
            if (
                layer is not None
                and layer.reused
                and (manifest.command or buildpack.uses_installed(request.source_dir, manifest))
            ):
                # What runs next may import it, or change it (then it is packed with the code).
                unpack_layer(layer, request.source_dir)
                folder = request.source_dir / layer.folder
                self._sandbox.give(request.app, folder, recursive=True)
                layer.state = snapshot(folder)
            buildpack.finish(request, manifest, jail, max(deadline - time.monotonic(), 0.0), log)
        if manifest.command:
            log.write(f"-----> Running build command: {manifest.command}")
            remaining = max(deadline - time.monotonic(), 0.0)
            # In the built environment: what the buildpack installed is importable.
            run_build_command(with_profile(manifest.command), request, jail, remaining, log)
        elif buildpack is None:
            log.write("-----> No build command declared (shipyard.toml [build] command)")
        if buildpack is not None and layer is not None and layer.state is not None:
            if snapshot(request.source_dir / layer.folder) != layer.state:
                log.write(f"-----> The build changed {layer.folder}/: packed with the code")
                layer = None
                buildpack.changed(request, jail, max(deadline - time.monotonic(), 0.0), log)
        # Runners unpack the artifact elsewhere: refuse now what would only fail there. A
        # reused layer passed these checks in the build that stored it.
        skipped = layer.folder if layer is not None and layer.reused else None
        check_relocatable(request.source_dir, (request.work_dir, request.source_dir), skipped)
        if skipped is None:
            for pack, what in declared:  # built by its buildpack or by the app's own command
                pack.check_built(request.source_dir, what)
        tarball = request.work_dir / "artifact.tar.gz"
        if layer is None:
            pack_reproducibly(request.source_dir, tarball, mtime=request.commit_timestamp)
        else:
            pack_layered(request.source_dir, layer, tarball, mtime=request.commit_timestamp)
            if not layer.reused and request.layer_dir is not None:
                LayerCache(request.layer_dir).put(layer)
        stored = self._store.put(tarball, app=request.app)
        log.write(f"-----> Artifact {stored.digest} ({stored.size} bytes)")
        return BuiltArtifact(digest=stored.digest, size=stored.size, location=stored.location)

    def has(self, app: str, artifact_id: str) -> bool:
        return self._store.has(artifact_id, app=app)

    def remove(self, app: str, artifact_id: str) -> None:
        self._store.remove(artifact_id, app=app)

    def buildpack_for(self, source_dir: Path, manifest: BuildManifest) -> Buildpack | None:
        """As Heroku detects: the first buildpack that recognises the app, unless the app's own
        build command says how to build it."""
        if manifest.command:
            return None
        return next((pack for pack in self._buildpacks if pack.detect(source_dir)), None)


def scrubbed_environment(request: BuildRequest, home: Path) -> dict[str, str]:
    """The build's whole environment: no config var, no secret, nothing of the worker's own."""
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "SOURCE_VERSION": request.commit_sha,
        # Tools that honour it (py_compile, pip wheels, tar) then write reproducible output.
        "SOURCE_DATE_EPOCH": str(request.commit_timestamp),
        # No bytecode: .pyc files would name the build's directory (not relocatable), and
        # differ from build to build.
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def build_home(request: BuildRequest) -> Path:
    """The build's own home directory, empty at the start of each build."""
    return request.work_dir / "home"


def build_environment(request: BuildRequest) -> dict[str, str]:
    """The scrubbed environment, with the build's home (made by `build_jail`)."""
    return scrubbed_environment(request, build_home(request))


def build_jail(sandbox: Sandbox, request: BuildRequest) -> Jail:
    """What the build's commands see: its source and home (theirs to write), its app's own
    download cache, each at its own path (the relocatability check knows those paths)."""
    home = build_home(request)
    home.mkdir(parents=True, exist_ok=True)
    binds = [Bind(request.source_dir, str(request.source_dir), writable=True)]
    binds.append(Bind(home, str(home), writable=True))
    sandbox.give(request.app, request.source_dir, recursive=True)
    sandbox.give(request.app, home)
    if request.cache_dir is not None:
        request.cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        sandbox.give(request.app, request.cache_dir, recursive=True)
        binds.append(Bind(request.cache_dir, str(request.cache_dir), writable=True))
    return sandbox.jail(request.app, binds, workdir=binds[0])


def run_build_command(
    command: str,
    request: BuildRequest,
    jail: Jail,
    timeout: float,
    log: BuildLog,
    *,
    step: str = "build command",
) -> None:
    """Run `command` in the source dir, in `jail`; stream its output to `log`; kill its group
    on timeout."""
    program = ["/bin/sh", "-c", command]
    with jail.launch(program, build_environment(request), die_with_parent=True) as launch:
        process = subprocess.Popen(
            launch.argv,
            cwd=request.source_dir,
            env=launch.env,
            stdin=launch.stdin,
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
        raise StageFailed(f"{step} timed out after {timeout:.0f}s and was killed")
    if code != 0:
        raise StageFailed(f"{step} exited with status {code} (see the build log)")


def pack_reproducibly(source: Path, target: Path, *, mtime: int) -> None:
    """A tar.gz whose bytes depend only on the files: sorted entries, fixed times and owners."""
    with target.open("wb") as raw:
        with gzip_member(raw) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
                add_entries(tar, source, sorted_below(source), mtime)
