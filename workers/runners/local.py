"""The local runner: release processes on the worker's host, detached from the worker."""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import shutil
import socket
import subprocess
import tarfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO

import structlog
from filelock import FileLock, Timeout

from shipyard.shared import constants, processes
from shipyard.shared.artifacts import ArtifactStore
from shipyard.shared.drivers import RunnerName
from shipyard.shared.exceptions import StageFailed
from shipyard.shared.manifest import process_types, read_procfile
from shipyard.shared.process_record import ProcessRecord, ProcessStatus
from shipyard.workers.archives import FirstLayer, code_filter, first_layer
from shipyard.workers.runners.base import (
    MAX_LINE_BYTES,
    STREAM_POLL_SECONDS,
    CancelCheck,
    OneOffEnd,
    OutputSink,
    ReleaseSpec,
    free_port,
    indexes_to_start,
    server_name,
    web_url,
    with_storage,
)
from shipyard.workers.runtime import check_python_version, with_profile
from shipyard.workers.sandbox import Bind, Jail, Sandbox

# Where a confined process finds its release (read-only, and its HOME) and its storage.
APP_PATH = "/app"


# In each unpacked artifact: the digest it was unpacked from, written last (so: it is whole).
ARTIFACT_MARKER = ".shipyard-artifact"
# And the digest of the layer it began with, if it began with one (workers/archives.py).
LAYER_MARKER = ".shipyard-layer"
# How often this process waits for the app shells it started that have ended.
REAP_SECONDS = 1.0
# An unpack of a large artifact on a busy host finishes well within this.
UNPACK_LOCK_SECONDS = 600.0

log = structlog.get_logger(__name__)


def _unpacked_artifact(path: Path) -> str | None:
    """The artifact unpacked (whole) at `path`, if any."""
    try:
        return (path / ARTIFACT_MARKER).read_text()
    except OSError:
        return None


def _fresh_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    path.chmod(0o755)  # code, readable by the app's user (not the umask's 0700)


def _unpack_whole(artifact: Path, staging: Path) -> None:
    _fresh_dir(staging)
    with tarfile.open(artifact) as tar:
        tar.extractall(staging, filter=code_filter)


def _unpack_layered(artifact: Path, layer: FirstLayer, shared: Path | None, staging: Path) -> None:
    """An artifact that begins with a layer, into `staging`: its code first, while the layer's
    folder is not there (nothing of the code member, an entry or a link, can then write into
    the folder, whose files other releases share); then the folder, hard-linked from `shared`
    (an unpacked artifact that began with the same layer) or unpacked from the layer's own
    member, which may hold nothing else. Either way the folder is exactly the layer."""
    _fresh_dir(staging)
    with artifact.open("rb") as raw:
        raw.seek(layer.end)
        with tarfile.open(fileobj=raw, mode="r|gz") as tar:
            tar.extractall(staging, filter=code_filter)
    if os.path.lexists(staging / layer.folder):
        raise tarfile.FilterError(f"the code after the layer makes {layer.folder!r} too")
    if shared is not None:
        try:
            shutil.copytree(
                shared / layer.folder, staging / layer.folder, symlinks=True, copy_function=os.link
            )
            return
        except (OSError, shutil.Error):  # another file system, too many links: unpacked instead
            shutil.rmtree(staging / layer.folder, ignore_errors=True)

    def in_the_layer(member: tarfile.TarInfo, destination: str) -> tarfile.TarInfo:
        if Path(member.name).parts[:1] != (layer.folder,):
            raise tarfile.FilterError(f"the layer holds {member.name!r}, outside {layer.folder}")
        return code_filter(member, destination)

    with artifact.open("rb") as raw:
        with tarfile.open(fileobj=_Prefix(raw, layer.end), mode="r|gz") as tar:
            tar.extractall(staging, filter=in_the_layer)


class _Prefix(io.RawIOBase):
    """The first `size` bytes of a file (a layer's member, not what follows it)."""

    def __init__(self, raw: BinaryIO, size: int) -> None:
        self._raw = raw
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(min(len(buffer), self._left))
        buffer[: len(data)] = data
        self._left -= len(data)
        return len(data)


def _write_marker(path: Path, text: str) -> None:
    """Shipyard's own file at `path` in an unpacked tree, whatever the artifact put there (a
    file, a folder, a link that would send the write elsewhere)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    with os.fdopen(os.open(path, flags, 0o600), "w") as handle:
        handle.write(text)


def _disk_use(folder: Path) -> int:
    """Bytes of the files below `folder` (links not followed; a file linked into several
    unpacked artifacts counted once)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                info = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


class _Reaper:
    """Waits for the platform's shells this process started around app processes, once they
    exit (an app that is SIGKILLed ends its shell at once), so that none is left `<defunct>`
    under a pool. Each is waited for by its own pid (never `wait(-1)`, which would take the exit
    status of another subprocess this process waits for)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._owner: int | None = None  # the pid whose thread watches: a forked child has none

    def after_fork_in_child(self) -> None:
        """A forked child (a pool's new worker process) starts with nothing to watch and a lock
        of its own: the parent's may have been held by its thread at the fork."""
        self._lock = threading.Lock()
        self._children = {}
        self._owner = None

    def watch(self, child: subprocess.Popen[bytes]) -> None:
        with self._lock:
            if self._owner != os.getpid():  # first use here, or inherited through a fork
                self._children = {}
                self._owner = os.getpid()
                threading.Thread(target=self._run, name="reaper", daemon=True).start()
            self._children[child.pid] = child

    def _run(self) -> None:
        while True:
            time.sleep(REAP_SECONDS)
            with self._lock:
                children = list(self._children.items())
            ended = [pid for pid, child in children if child.poll() is not None]
            if ended:
                with self._lock:
                    for pid in ended:
                        self._children.pop(pid, None)


_reaper = _Reaper()
os.register_at_fork(after_in_child=_reaper.after_fork_in_child)


def exit_status_path(log_path: Path) -> Path:
    """Where a process's shell writes its command's exit status."""
    return log_path.with_suffix(".exit")


class LocalRunner:
    """Unpacks the verified artifact once per release and starts each Procfile entry."""

    name: RunnerName = "local"

    def __init__(
        self,
        store: ArtifactStore,
        run_dir: Path,
        storage_root: Path,
        sandbox: Sandbox,
        host: str | None = None,
    ) -> None:
        self._host = host or socket.gethostname()  # this run host's name (SHIPYARD_HOST_NAME)
        self._store = store
        self._run_dir = run_dir
        self._storage_root = storage_root
        self._sandbox = sandbox

    def storage_dir(self, spec: ReleaseSpec) -> Path:
        """The environment's persistent storage: its own storage_dir, or one in the data dir.
        It outlives every release, is never part of an artifact and is made on first use."""
        path = (
            Path(spec.storage_dir)
            if spec.storage_dir
            else self._storage_root / spec.app / spec.environment
        )
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StageFailed(
                f"cannot create the environment's storage directory {path}: {exc.strerror}"
            ) from exc
        # The app's own user owns it (all of it, the first time: what it wrote unconfined).
        self._sandbox.give(spec.app, path, recursive=True)
        return path

    def release_dir(self, spec: ReleaseSpec) -> Path:
        """Where release `spec`'s code is: its artifact, unpacked once on this host and shared
        read-only by every release of it (config releases, rollbacks, other environments)."""
        return self._artifacts_dir(spec.app) / spec.artifact_id.removeprefix("sha256:")

    def _artifacts_dir(self, app: str) -> Path:
        # "_": no environment can have that name (names are [a-z0-9-]), so none shares it.
        return self._run_dir / app / "_artifacts"

    @contextmanager
    def _unpacking(self, app: str) -> Iterator[Path]:
        """The app's unpacked artifacts, held against a concurrent unpack or prune on this host."""
        folder = self._artifacts_dir(app)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(folder / ".lock", timeout=UNPACK_LOCK_SECONDS):
                yield folder
        except Timeout:
            raise StageFailed(
                f"{app}'s artifacts on this host stayed locked for {UNPACK_LOCK_SECONDS:g}s "
                "(another unpack or clean-up under way): try again"
            ) from None

    def _unpack(self, spec: ReleaseSpec) -> Path:
        target = self.release_dir(spec)
        # Verified at every start, even when unpacked already: a stored artifact that was
        # changed is refused, never run from an earlier copy (docs/operations.md).
        artifact = self._store.fetch(spec.artifact_id, app=spec.app)
        with self._unpacking(spec.app):
            if _unpacked_artifact(target) == spec.artifact_id:
                return target
            staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            layer = first_layer(artifact)
            shared = self._unpacked_layer(spec.app, layer) if layer is not None else None
            try:
                if layer is not None:
                    _unpack_layered(artifact, layer, shared, staging)
                else:
                    _unpack_whole(artifact, staging)
            except (tarfile.TarError, KeyError) as exc:  # refused by a filter, or malformed
                raise StageFailed(
                    f"artifact {spec.artifact_id} cannot be unpacked safely: {exc}"
                ) from exc
            # Never one the artifact brought: it would make later artifacts link its files.
            _write_marker(staging / LAYER_MARKER, layer.digest if layer is not None else "")
            _write_marker(staging / ARTIFACT_MARKER, spec.artifact_id)
            shutil.rmtree(target, ignore_errors=True)  # one without its marker is never whole
            os.replace(staging, target)
        return target

    def _unpacked_layer(self, app: str, layer: FirstLayer) -> Path | None:
        """An unpacked artifact of `app` on this host that began with the same layer (whole,
        unchanged: Shipyard's files, read-only to apps), if there is one."""
        for unpacked in self._artifacts_dir(app).iterdir():
            if unpacked.name.startswith(".") or _unpacked_artifact(unpacked) is None:
                continue
            try:
                if (unpacked / LAYER_MARKER).read_text() == layer.digest:
                    return unpacked  # written by _unpack, never taken from an artifact
            except OSError:
                continue
        return None

    def prune(self, app: str, keep: set[str]) -> int:
        """Remove app `app`'s unpacked artifacts that are not in `keep` (and release
        directories of the layout before, one copy per release); returns the bytes its
        unpacked artifacts take on this host afterwards."""
        removed = 0
        with self._unpacking(app) as folder:
            earlier = [d for d in (self._run_dir / app).glob("*/v*") if d.parent != folder]
            for entry in [*folder.iterdir(), *earlier]:
                if not entry.is_dir():
                    continue
                if entry.name.startswith(".") or _unpacked_artifact(entry) not in keep:
                    shutil.rmtree(entry, ignore_errors=True)  # not kept, or a broken-off unpack
                    removed += 1
            size = _disk_use(folder)
        if removed:
            log.info("runner.pruned", app=app, removed=removed, bytes_left=size)
        return size

    def _jail(self, spec: ReleaseSpec, app_dir: Path) -> Jail:
        """What the release's programs see: the release (read-only) and the storage."""
        release = Bind(app_dir, APP_PATH)
        storage = Bind(self.storage_dir(spec), constants.CONTAINER_STORAGE_PATH, writable=True)
        return self._sandbox.jail(spec.app, (release, storage), workdir=release)

    def _environment(self, spec: ReleaseSpec, jail: Jail, port: int | None) -> dict[str, str]:
        release, storage = jail.binds
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": jail.path(release),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            **with_storage(spec.env, jail.path(storage)),
            constants.STORAGE_VARIABLE: jail.path(storage),
            constants.RELEASE_VARIABLE: str(spec.release_version),
        }
        if port is not None:
            env["PORT"] = str(port)
        return env

    def start(self, spec: ReleaseSpec) -> list[ProcessRecord]:
        app_dir = self._unpack(spec)
        jail = self._jail(spec, app_dir)
        check_python_version(jail, self._environment(spec, jail, None))
        procfile = process_types(read_procfile(app_dir))
        started: list[ProcessRecord] = []
        try:
            for process_type, command in procfile.items():
                for index in indexes_to_start(spec, process_type):
                    started.append(self._start_process(spec, jail, process_type, index, command))
        except BaseException:
            self.stop(started)  # a release starts whole or not at all
            raise
        return started

    def start_process(self, spec: ReleaseSpec, process_type: str, index: int) -> ProcessRecord:
        """Start one process of the release again (after it exited), on a new port."""
        app_dir = self._unpack(spec)
        command = process_types(read_procfile(app_dir)).get(process_type)
        if command is None:
            raise StageFailed(f"the release has no {process_type!r} process")
        return self._start_process(spec, self._jail(spec, app_dir), process_type, index, command)

    def _start_process(
        self, spec: ReleaseSpec, jail: Jail, process_type: str, index: int, command: str
    ) -> ProcessRecord:
        log_dir = self._run_dir / spec.app / spec.environment / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log_path = log_dir / f"{spec.deployment_id}.{process_type}.{index}.log"
        exit_path = exit_status_path(log_path)
        exit_path.unlink(missing_ok=True)
        env = self._environment(spec, jail, port)
        _, storage = jail.binds
        # The app runs in its sandbox; the shell around it is the platform's (not exec'd: it
        # stays to write the command's exit status where the run host's supervision reads it,
        # and the app never sees that file or its log). The app, its sandbox and the shell are
        # one process group, stopped together; the sandbox outlives the shell while it drains.
        program = ["/bin/sh", "-c", with_profile(command)]
        with (
            jail.launch(program, env, die_with_parent=False) as app,
            log_path.open("ab") as output,
        ):
            line = f"{shlex.join(app.argv)}\necho $? > {shlex.quote(str(exit_path))}"
            # The config travels in the environment only (confined: on the sandbox's input,
            # past the platform's own shell); the command line is the Procfile's.
            child = subprocess.Popen(
                ["/bin/sh", "-c", line],
                cwd=jail.workdir.source,
                env=app.env,
                stdin=app.stdin,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives a worker restart; stopped as a group
            )
        _reaper.watch(child)
        return {
            "type": process_type,
            "index": index,
            "status": ProcessStatus.RUNNING,
            "runner": self.name,
            "pid": child.pid,
            "started": processes.start_time(child.pid),
            "port": port,
            "url": web_url(process_type, port),
            "log": str(log_path),
            "storage": str(storage.source),
            "restarts": 0,
            "server": server_name(spec.deployment_id, process_type, index, port),
            "host": spec.host,
        }

    def exit_status(self, process: ProcessRecord) -> int | None:
        """How the process's command ended, if it ended on its own (None: unknown, or killed
        with its shell)."""
        try:
            return int(exit_status_path(Path(process["log"])).read_text().strip())
        except (OSError, ValueError):
            return None

    def is_running(self, process: ProcessRecord) -> bool:
        pid = process.get("pid")
        if pid is None or process.get("host", self._host) != self._host:
            return False  # not a process of this host: nothing here says it runs
        return processes.is_alive(pid, process.get("started"))

    def output_tail(self, process: ProcessRecord, lines: int) -> str:
        path = Path(process["log"])
        if not path.is_file():
            return ""
        with path.open("rb") as handle:
            tail = deque(handle, maxlen=lines)
        return b"".join(tail).decode(errors="replace")

    def stop(self, records: list[ProcessRecord]) -> None:
        for record in records:
            pid = record.get("pid")
            if pid is None:  # a process of another runner (a container) is not ours to stop
                continue
            if record.get("host", self._host) != self._host:
                continue  # another run host's pid means nothing here: that host stops it
            processes.terminate_group(pid, record.get("started"), constants.APP_STOP_GRACE_SECONDS)

    def stream_once(
        self,
        spec: ReleaseSpec,
        command: str,
        timeout: float,
        output: OutputSink,
        cancelled: CancelCheck,
        stdin: bytes | None = None,
    ) -> OneOffEnd:
        jail = self._jail(spec, self._unpack(spec))
        env = self._environment(spec, jail, None)
        check_python_version(jail, env)
        program = ["/bin/sh", "-c", with_profile(command)]
        with jail.launch(program, env, die_with_parent=True, stdin=stdin) as launch:
            child = subprocess.Popen(
                launch.argv,
                cwd=jail.workdir.source,
                env=launch.env,
                stdin=launch.stdin,
                pass_fds=launch.pass_fds,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Dies with the run host's agent (then recorded as lost), never orphaned.
                preexec_fn=processes.die_with_parent,
            )
        assert child.stdout is not None
        reader = threading.Thread(target=_lines_to, args=(child.stdout, output), daemon=True)
        reader.start()
        ended = _await_one_off(child, timeout, cancelled)
        reader.join(timeout=5)
        return ended


def _lines_to(stream: IO[bytes], output: OutputSink) -> None:
    """Each line of `stream` to `output` until it ends."""
    with stream:
        for raw in iter(lambda: stream.readline(MAX_LINE_BYTES), b""):
            output(raw.decode(errors="replace").rstrip("\n"))


def _await_one_off(
    child: subprocess.Popen[bytes], timeout: float, cancelled: CancelCheck
) -> OneOffEnd:
    """Until the one-off exits; killed with its whole process group at `timeout` or when
    cancelled."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            code = child.wait(timeout=STREAM_POLL_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        else:
            # What it left running in the background ends with it (the sandbox's PID namespace
            # ends them too; unconfined, only this does).
            processes.terminate_group(child.pid, None, 0)
            return OneOffEnd(exit_code=code)
        timed_out = time.monotonic() > deadline
        if timed_out or cancelled():
            processes.terminate_group(child.pid, None, 0)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)
            return OneOffEnd(exit_code=None, timed_out=timed_out, cancelled=not timed_out)
