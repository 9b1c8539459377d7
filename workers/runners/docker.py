"""The Docker runner: each Procfile process as a container of the release's image.

Image convention: the app lives in the image's WORKDIR with its Procfile at the root of it, and the
image has a `/bin/sh` (Procfile commands are shell lines, as on Heroku). The Procfile is read out of
the image itself, so what runs is exactly what was built. An image without a Procfile runs its own
ENTRYPOINT/CMD as `web`, as Heroku's container runtime, Dokku and Kamal do.

With a registry as the artifact store, the release's image is pulled by its manifest digest
(`repo@sha256:…`, which the engine verifies) unless this engine already has it, and containers
run from that image, never from a tag.
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import structlog
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from shipyard.shared import constants
from shipyard.shared.artifacts import ImageRegistry
from shipyard.shared.drivers import RunnerName
from shipyard.shared.exceptions import ArtifactIntegrityError, StageFailed
from shipyard.shared.manifest import process_types, read_procfile
from shipyard.shared.process_record import ProcessRecord, ProcessStatus
from shipyard.workers.docker_engine import image_tag
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
from shipyard.workers.sandbox import DEFAULT_UID_BASE, app_uid

# Procfile lines are shell commands; the container's entrypoint is replaced so that an image's
# own ENTRYPOINT cannot swallow them as arguments.
SHELL = ["/bin/sh", "-c"]

# Each container's own /tmp, writable by whichever user it runs as (as in the local sandbox).
PRIVATE_TMP = {"/tmp": "mode=1777"}
# A one-off's standard input (`shipyard run --stdin`), put into its container before it starts
# and read by the shell that runs the command (the SDK's attach cannot close a container's
# input without `stdin_once`, which its `create` does not take).
INPUT_FILE = "/.shipyard-stdin"
_FROM_INPUT_FILE = f'exec /bin/sh -c "$0" < {INPUT_FILE}'

log = structlog.get_logger(__name__)


class DockerRunner:
    """Starts containers from a verified image on one engine (DOCKER_HOST, or the local socket)."""

    name: RunnerName = "docker"

    def __init__(
        self,
        client: docker.DockerClient,
        registry: ImageRegistry | None = None,
        uid_base: int = DEFAULT_UID_BASE,
    ) -> None:
        self._client = client
        self._registry = registry
        self._uid_base = uid_base
        self._host_network: bool | None = None

    def start(self, spec: ReleaseSpec) -> list[ProcessRecord]:
        with engine_errors("start the release"):
            image = self._image(spec)
            procfile = image_processes(self._client, image, spec)
            user = self._user(spec, image)
            self._remove_leftovers(spec)
            started: list[ProcessRecord] = []
            try:
                for process_type, command in procfile.items():
                    for index in indexes_to_start(spec, process_type):
                        started.append(
                            self._start_process(spec, image.id, user, process_type, index, command)
                        )
            except BaseException:
                self.stop(started)
                raise
        return started

    def _image(self, spec: ReleaseSpec) -> Any:
        """The release's image on this engine: pulled by digest from the registry if there is
        one, else the engine's own image, checked against its tag."""
        if self._registry is None:
            return verified_image(self._client, spec)
        return pulled_image(self._client, self._registry, spec)

    def _start_process(
        self,
        spec: ReleaseSpec,
        image_id: str,
        user: str | None,
        process_type: str,
        index: int,
        command: str | None,
    ) -> ProcessRecord:
        port = free_port()
        bind_host, network = network_settings(self._uses_host_network(), port)
        # The config travels in the container's environment (the API request body), never on
        # its command line: the command is the Procfile's own line, or the image's own CMD.
        container = self._client.containers.create(
            image_id,
            entrypoint=SHELL if command is not None else None,
            command=[command] if command is not None else None,
            environment={
                "HOST": bind_host,
                **with_storage(spec.env, constants.CONTAINER_STORAGE_PATH),
                **platform_environment(spec),
                "PORT": str(port),
            },
            labels=container_labels(spec, process_type),
            volumes=storage_volumes(spec),
            user=user,
            tmpfs=PRIVATE_TMP,
            name=f"{spec.app}-{spec.environment}-v{spec.release_version}-{process_type}-"
            f"{index}-{spec.deployment_id[:8]}",
            init=True,  # a real PID 1 forwards SIGTERM, so stopping is quick and graceful
            restart_policy={"Name": "unless-stopped"},
            **resource_limits(spec),
            **network,
        )
        record: ProcessRecord = {
            "type": process_type,
            "index": index,
            "status": ProcessStatus.RUNNING,
            "runner": self.name,
            "container": container.id,
            "name": container.name,
            "image": image_id,
            "port": port,
            "url": web_url(process_type, port),
            "storage": storage_location(spec),
            "server": server_name(spec.deployment_id, process_type, index, port),
            "host": spec.host,
        }
        try:
            container.start()
        except DockerException:
            self.stop([record])
            raise
        return record

    def _user(self, spec: ReleaseSpec, image: Any) -> str | None:
        """Who the containers run as: the image's USER when it names one, else the app's own
        unprivileged user (never root by default), which then owns the storage."""
        if image.attrs["Config"].get("User"):
            return None
        uid = app_uid(spec.app, self._uid_base)
        self._give_storage(spec, uid)
        return f"{uid}:{uid}"

    def _give_storage(self, spec: ReleaseSpec, uid: int) -> None:
        """Make the environment's storage the app user's: its host directory, or its named
        volume's directory when the engine is on this host and Shipyard may change owners."""
        if spec.storage_dir:
            path = Path(spec.storage_dir)
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        else:
            volume = self._client.volumes.create(storage_location(spec))  # idempotent
            path = Path(volume.attrs.get("Mountpoint") or "/nonexistent")
        try:
            if path.stat().st_uid != uid:
                os.chown(path, uid, uid)
        except OSError as exc:
            # A remote or rootless engine: the app may find its storage read-only; say so.
            log.warning("docker.storage_owner", storage=storage_location(spec), error=str(exc))

    def _uses_host_network(self) -> bool:
        """Host networking when the engine has no bridge (`dockerd --bridge=none`), as here."""
        if self._host_network is None:
            bridges = self._client.api.networks(names=["bridge"])
            self._host_network = not any(network["Name"] == "bridge" for network in bridges)
        return self._host_network

    def _remove_leftovers(self, spec: ReleaseSpec) -> None:
        """Containers of an earlier, interrupted start of the same deployment on this run host
        (the engine may serve several: a spread deployment's other shares are not leftovers)."""
        labels = [f"shipyard.deployment={spec.deployment_id}", f"shipyard.host={spec.host}"]
        leftovers = self._client.containers.list(all=True, filters={"label": labels})
        for container in leftovers:
            self._remove(container.id)

    def is_running(self, process: ProcessRecord) -> bool:
        try:
            state = self._client.api.inspect_container(process["container"])["State"]
        except NotFound:
            return False
        # "restarting" is a process that exited: the restart policy is bringing it back.
        return bool(state["Status"] == "running")

    def output_tail(self, process: ProcessRecord, lines: int) -> str:
        try:
            output: bytes = self._client.api.logs(process["container"], tail=lines)
        except NotFound:
            return ""
        return output.decode(errors="replace")

    def stop(self, processes: list[ProcessRecord]) -> None:
        for process in processes:
            container_id = process.get("container")
            if container_id is not None:  # a process of another runner is not ours to stop
                self._remove(str(container_id))

    def _remove(self, container_id: str) -> None:
        try:
            self._client.api.stop(container_id, timeout=int(constants.APP_STOP_GRACE_SECONDS))
            self._client.api.remove_container(container_id, v=True, force=True)
        except NotFound:
            return  # already gone
        except APIError as exc:
            if exc.status_code != 409:  # 409: its removal is already under way
                raise

    def stream_once(
        self,
        spec: ReleaseSpec,
        command: str,
        timeout: float,
        output: OutputSink,
        cancelled: CancelCheck,
        stdin: bytes | None = None,
    ) -> OneOffEnd:
        """A throw-away container of the release's image, its log followed as it is printed;
        `stdin` written to its standard input (then closed), as `docker run -i` does."""
        with engine_errors("run the one-off command"):
            image = self._image(spec)
            bind_host, network = network_settings(self._uses_host_network(), None)
            container = self._client.containers.create(
                image.id,
                entrypoint=SHELL if stdin is None else [*SHELL, _FROM_INPUT_FILE],
                command=[command],
                environment={
                    "HOST": bind_host,
                    **with_storage(spec.env, constants.CONTAINER_STORAGE_PATH),
                    **platform_environment(spec),
                },
                labels=container_labels(spec, constants.ONE_OFF_PROCESS),
                volumes=storage_volumes(spec),
                user=self._user(spec, image),
                tmpfs=PRIVATE_TMP,
                init=True,
                **resource_limits(spec),
                **network,
            )
            try:
                if stdin is not None:  # a file in the container's own layer, gone with it
                    container.put_archive("/", _input_archive(stdin))
                container.start()
                follower = threading.Thread(target=_follow, args=(container, output), daemon=True)
                follower.start()
                ended = _await_container(container, timeout, cancelled)
                follower.join(timeout=5)
            finally:
                self._remove(container.id)
        return ended


def _input_archive(data: bytes) -> bytes:
    """A tar of the one-off's input as INPUT_FILE, readable by any user the image runs as."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo(INPUT_FILE.lstrip("/"))
        info.size, info.mode = len(data), 0o444
        tar.addfile(info, io.BytesIO(data))
    return archive.getvalue()


def _follow(container: Any, output: OutputSink) -> None:
    """Each line the container prints, to `output`, until it ends (a line longer than
    MAX_LINE_BYTES is passed on in pieces)."""
    pending = b""
    with contextlib.suppress(APIError, OSError):
        for chunk in container.logs(stdout=True, stderr=True, stream=True, follow=True):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            while len(pending) > MAX_LINE_BYTES:
                lines.append(pending[:MAX_LINE_BYTES])
                pending = pending[MAX_LINE_BYTES:]
            for line in lines:
                output(line.decode(errors="replace"))
    if pending:
        output(pending.decode(errors="replace"))


def _await_container(container: Any, timeout: float, cancelled: CancelCheck) -> OneOffEnd:
    """Until the container exits; killed at `timeout` or when cancelled."""
    deadline = time.monotonic() + timeout
    refused = 0  # waits that failed at once, not at their read timeout: the engine is away
    while True:
        asked = time.monotonic()
        try:
            status = container.wait(timeout=STREAM_POLL_SECONDS)
            return OneOffEnd(exit_code=int(status["StatusCode"]))
        except OSError as exc:  # the SDK reports its read timeout so: not ended yet
            refused = refused + 1 if time.monotonic() - asked < STREAM_POLL_SECONDS / 2 else 0
            if refused >= 5:
                raise StageFailed(f"lost the Docker engine during the command ({exc})") from exc
        timed_out = time.monotonic() > deadline
        if timed_out or cancelled():
            with contextlib.suppress(APIError):
                container.kill()
            return OneOffEnd(exit_code=None, timed_out=timed_out, cancelled=not timed_out)


def verified_image(client: docker.DockerClient, spec: ReleaseSpec) -> Any:
    """The release's image, refused if its tag now names another image (it was retagged)."""
    try:
        image = client.images.get(spec.artifact_id)
    except ImageNotFound as exc:
        raise StageFailed(
            f"image {spec.artifact_id} is not on this Docker engine "
            "(removed, or built on another engine)"
        ) from exc
    # Image ids are digests of the image's config, labels included, so the commit label is the
    # builder's own; the tag it was built under must still name this very image.
    commit = image.labels.get("shipyard.commit")
    if not commit:
        raise ArtifactIntegrityError(
            f"image {spec.artifact_id} was not built by Shipyard's docker builder"
        )
    tag = image_tag(spec.app, commit, image.labels.get("shipyard.path", ""))
    try:
        tagged_id = client.images.get(tag).id
    except ImageNotFound:
        return image  # untagged by hand: the image itself is still the artifact
    if tagged_id != spec.artifact_id:
        raise ArtifactIntegrityError(
            f"{tag} is image {tagged_id}, not the release's artifact {spec.artifact_id} "
            "(the tag was moved to another image): refusing to run it"
        )
    return image


def pulled_image(client: docker.DockerClient, registry: ImageRegistry, spec: ReleaseSpec) -> Any:
    """The image `repo@<artifact digest>`, pulled first unless this engine has it already."""
    repository = registry.image_repository(spec.app)
    reference = f"{repository}@{spec.artifact_id}"
    try:
        return client.images.get(reference)
    except ImageNotFound:
        pass
    reason: str | None = None
    try:
        for chunk in client.api.pull(
            repository, tag=spec.artifact_id, stream=True, decode=True,
            auth_config=registry.docker_auth(),
        ):  # fmt: skip
            if "error" in chunk and reason is None:
                reason = (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
    except APIError as exc:  # refused before streaming: unknown manifest, no access, …
        reason = exc.explanation or str(exc)
    if reason is not None:
        raise StageFailed(
            f"could not pull {reference}: {reason} (is the registry in SHIPYARD_ARTIFACT_STORE "
            "running and reachable from this Docker engine, or was the artifact "
            "garbage-collected?)"
        )
    try:
        return client.images.get(reference)
    except ImageNotFound as exc:
        raise StageFailed(f"the engine pulled {reference} but does not list it") from exc


def image_processes(
    client: docker.DockerClient, image: Any, spec: ReleaseSpec
) -> dict[str, str | None]:
    """Process types and their commands: the image's Procfile, or else its CMD as `web` (None:
    run the image's own ENTRYPOINT and CMD)."""
    procfile = read_image_procfile(client, image, spec)
    if procfile is not None:
        return dict(process_types(procfile))
    config = image.attrs["Config"]
    if not config.get("Cmd") and not config.get("Entrypoint"):
        raise StageFailed(
            f"the image has no {constants.PROCFILE} in its WORKDIR and no CMD or ENTRYPOINT: "
            f"add a {constants.PROCFILE} ('web: <command>'), or a CMD that starts the web server "
            "on $PORT"
        )
    return {"web": None}


def read_image_procfile(
    client: docker.DockerClient, image: Any, spec: ReleaseSpec
) -> dict[str, str] | None:
    """The Procfile at the root of the image's WORKDIR, read from a container never started;
    None when the image has none."""
    workdir = image.attrs["Config"].get("WorkingDir") or "/"
    probe = client.containers.create(
        image.id, entrypoint=SHELL, command=["true"], labels=container_labels(spec, "procfile")
    )
    try:
        chunks, _stat = probe.get_archive(f"{workdir.rstrip('/')}/{constants.PROCFILE}")
        archive = b"".join(chunks)
    except NotFound:
        return None
    finally:
        probe.remove(force=True)
    with tempfile.TemporaryDirectory(prefix="procfile-") as folder:
        _extract_procfile(archive, Path(folder))
        return read_procfile(Path(folder))


def _extract_procfile(archive: bytes, target: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.getmember(constants.PROCFILE)
        if not member.isfile():
            raise StageFailed(f"the image's {constants.PROCFILE} is not a regular file")
        source = tar.extractfile(member)
        assert source is not None  # a regular file always has content
        (target / constants.PROCFILE).write_bytes(source.read())


@contextmanager
def engine_errors(action: str) -> Iterator[None]:
    """Engine refusals and lost connections as a stage failure a person can act on."""
    try:
        yield
    except DockerException as exc:
        reason = getattr(exc, "explanation", None) or str(exc)
        raise StageFailed(f"the Docker engine could not {action}: {reason}") from exc
    except OSError as exc:  # requests' ConnectionError: the engine went away
        raise StageFailed(f"lost the Docker engine while trying to {action} ({exc})") from exc


def container_labels(spec: ReleaseSpec, process_type: str) -> dict[str, str]:
    """Labels that tie a container to its app, environment, release, process and deployment."""
    return {
        "shipyard.app": spec.app,
        "shipyard.environment": spec.environment,
        "shipyard.release": spec.release_id,
        "shipyard.process": process_type,
        "shipyard.deployment": spec.deployment_id,
        "shipyard.host": spec.host,  # the run host that started it
    }


def storage_location(spec: ReleaseSpec) -> str:
    """The environment's persistent storage: its host directory, or a named volume of its own."""
    return spec.storage_dir or f"shipyard-{spec.app}-{spec.environment}-storage"


def storage_volumes(spec: ReleaseSpec) -> dict[str, dict[str, str]]:
    """Mounted at the same path in every container of the environment, release phase included."""
    return {storage_location(spec): {"bind": constants.CONTAINER_STORAGE_PATH, "mode": "rw"}}


def platform_environment(spec: ReleaseSpec) -> dict[str, str]:
    """What the platform tells every container: where its storage is, which release it is."""
    return {
        constants.STORAGE_VARIABLE: constants.CONTAINER_STORAGE_PATH,
        constants.RELEASE_VARIABLE: str(spec.release_version),
    }


def network_settings(host_network: bool, port: int | None) -> tuple[str, dict[str, Any]]:
    """The address the app should bind ($HOST) and the container's network options."""
    if host_network:
        # On the host's network nothing is published: the app itself listens on loopback only.
        return "127.0.0.1", {"network_mode": "host"}
    # Behind a bridge the app listens on the container's interfaces, and the published port is
    # bound to the host's loopback only.
    return "0.0.0.0", {"ports": {f"{port}/tcp": ("127.0.0.1", port)}} if port is not None else {}


def resource_limits(spec: ReleaseSpec) -> dict[str, Any]:
    """The environment's memory and CPU limits, as the SDK spells them."""
    limits: dict[str, Any] = {}
    if spec.memory_limit:
        limits["mem_limit"] = spec.memory_limit  # "256m": the SDK accepts Docker's units
    if spec.cpu_limit:
        limits["nano_cpus"] = round(spec.cpu_limit * 1e9)
    return limits
