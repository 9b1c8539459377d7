"""The Docker builder: the commit's own Dockerfile, built by a Docker Engine into a tagged image.

With a registry as the artifact store the image is pushed there, and the artifact id is the
pushed manifest's digest: a run host on another engine pulls exactly that (`repo@sha256:…`).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable
from typing import Any

import docker
import structlog
from docker.errors import APIError, DockerException, ImageNotFound
from urllib3.exceptions import HTTPError, ReadTimeoutError

from shipyard.shared.artifacts import ImageRegistry
from shipyard.shared.exceptions import StageFailed
from shipyard.workers.build_log import BuildLog
from shipyard.workers.builders.base import BuildRequest, BuiltArtifact
from shipyard.workers.docker_engine import image_tag

logger = structlog.get_logger(__name__)

DOCKERFILE = "Dockerfile"


class DockerBuilder:
    """Builds the exported commit with its Dockerfile; the artifact id is the image id, or the
    manifest digest of the pushed image when there is a registry."""

    name = "docker"

    def __init__(self, client: docker.DockerClient, registry: ImageRegistry | None = None) -> None:
        self._client = client
        self._registry = registry

    def build(self, request: BuildRequest, log: BuildLog) -> BuiltArtifact:
        if not (request.source_dir / DOCKERFILE).is_file():
            raise StageFailed(
                f"no {DOCKERFILE} at the root of the app (the docker builder needs one)"
            )
        tag = image_tag(request.app, request.commit_sha, request.path)
        log.write(f"-----> Building image {tag} with the app's {DOCKERFILE}")
        image_id = self._stream_build(request, tag, log)
        size = self._image_size(image_id)
        log.write(f"-----> Image {image_id} ({size} bytes)")
        if self._registry is None:
            return BuiltArtifact(digest=image_id, size=size, location=tag)
        digest, reference = self._push(self._registry, request, image_id, log)
        return BuiltArtifact(digest=digest, size=size, location=reference)

    def _push(
        self, registry: ImageRegistry, request: BuildRequest, image_id: str, log: BuildLog
    ) -> tuple[str, str]:
        """Push the image; its manifest digest and `repo@digest` reference."""
        repository = registry.image_repository(request.app)
        # One tag per image (commit and image id): a rebuild never untags an older image that
        # a release may still need.
        push_tag = f"{request.commit_sha[:12]}-{image_id.removeprefix('sha256:')[:12]}"
        log.write(f"-----> Pushing {repository}:{push_tag}")
        try:
            self._client.api.tag(image_id, repository, push_tag)
            chunks = self._client.api.push(
                repository,
                tag=push_tag,
                stream=True,
                decode=True,
                auth_config=registry.docker_auth(),
            )
            digest = _pushed_digest(chunks, repository)
        except APIError as exc:
            raise StageFailed(
                f"docker push to {repository} failed: {exc.explanation or exc}"
            ) from exc
        except (DockerException, OSError, HTTPError) as exc:
            raise StageFailed(
                f"lost the Docker engine while pushing to {repository} ({exc})"
            ) from exc
        log.write(f"-----> Pushed {repository}@{digest}")
        return digest, f"{repository}@{digest}"

    def has(self, app: str, artifact_id: str) -> bool:
        if self._registry is not None:
            return self._registry.has_image(app, artifact_id)
        try:
            self._client.images.get(artifact_id)
        except ImageNotFound:
            return False
        return True

    def remove(self, app: str, artifact_id: str) -> None:
        """Delete the image (from the registry too, if there is one); a gone one is fine."""
        reference = artifact_id
        if self._registry is not None:
            self._registry.delete_image(app, artifact_id)
            reference = f"{self._registry.image_repository(app)}@{artifact_id}"
        try:
            # force untags it everywhere and ignores stopped containers.
            self._client.images.remove(reference, force=True)
        except ImageNotFound:
            pass
        except APIError as exc:
            if exc.status_code != 409:
                raise
            # A running container still uses it: keep it, and let the other removals go on.
            logger.warning("artifact.image_in_use", artifact_id=artifact_id, error=exc.explanation)

    def _stream_build(self, request: BuildRequest, tag: str, log: BuildLog) -> str:
        """Run the build, writing each output line to `log` as the daemon sends it."""
        try:
            chunks = self._start_build(request, tag)
            try:
                return _follow(chunks, log, timeout=request.timeout)
            finally:
                chunks.close()  # dropping the stream makes the daemon cancel an unfinished build
        except ReadTimeoutError as exc:
            raise StageFailed(
                f"docker build printed nothing for {request.timeout:g}s and was cancelled"
            ) from exc
        except APIError as exc:  # refused before streaming (e.g. a Dockerfile parse error)
            raise StageFailed(f"docker build failed: {exc.explanation or exc}") from exc
        except (DockerException, OSError, HTTPError) as exc:
            raise StageFailed(f"lost the Docker engine during the build ({exc})") from exc

    def _start_build(
        self, request: BuildRequest, tag: str
    ) -> Generator[dict[str, Any], None, None]:
        stream: Generator[dict[str, Any], None, None] = self._client.api.build(
            path=str(request.source_dir),
            dockerfile=DOCKERFILE,
            tag=tag,
            labels={
                "shipyard.app": request.app,
                "shipyard.commit": request.commit_sha,
                "shipyard.path": request.path,
            },
            rm=True,
            forcerm=True,  # a failed step leaves no intermediate container behind
            pull=False,  # base images come from the engine's own store
            decode=True,
            timeout=request.timeout,  # the longest silence tolerated on the stream
            # No build args at all: the SDK would otherwise add the worker's proxy settings
            # (~/.docker/config.json) as build args, and those may hold credentials.
            use_config_proxy=False,
        )
        return stream

    def _image_size(self, image_id: str) -> int:
        try:
            return int(self._client.images.get(image_id).attrs["Size"])
        except ImageNotFound as exc:
            raise StageFailed(f"the built image {image_id} disappeared from the engine") from exc


def _pushed_digest(chunks: Iterable[dict[str, Any]], repository: str) -> str:
    """The manifest digest from a push's JSON stream; an error in it fails the build."""
    digest: str | None = None
    for chunk in chunks:
        if "error" in chunk:
            detail = chunk.get("errorDetail") or {}
            raise StageFailed(
                f"docker push to {repository} failed: {detail.get('message') or chunk['error']} "
                "(the registry in SHIPYARD_ARTIFACT_STORE must be reachable from the Docker "
                "engine, with SHIPYARD_REGISTRY_USERNAME / _PASSWORD if it needs them)"
            )
        aux = chunk.get("aux")
        if isinstance(aux, dict) and "Digest" in aux:
            digest = str(aux["Digest"])
    if digest is None:
        raise StageFailed(f"docker push to {repository} ended without naming a digest")
    return digest


def _follow(chunks: Iterable[dict[str, Any]], log: BuildLog, *, timeout: float) -> str:
    """The image id from the build's JSON stream; its output goes to `log` line by line."""
    deadline = time.monotonic() + timeout
    lines = _LineSplitter(log)
    image_id: str | None = None
    for chunk in chunks:
        if "error" in chunk:
            lines.flush()
            detail = chunk.get("errorDetail") or {}
            raise StageFailed(f"docker build failed: {detail.get('message') or chunk['error']}")
        if "stream" in chunk:
            lines.feed(str(chunk["stream"]))
        elif "status" in chunk:
            lines.feed(f"{chunk['status']}\n")
        aux = chunk.get("aux")
        if isinstance(aux, dict) and "ID" in aux:
            image_id = str(aux["ID"])
        if time.monotonic() > deadline:
            raise StageFailed(f"docker build ran longer than {timeout:g}s and was cancelled")
    lines.flush()
    if image_id is None:
        raise StageFailed("docker build ended without naming an image (see the build log)")
    return image_id


class _LineSplitter:
    """The daemon sends a step's text and its newline in separate chunks: write whole lines."""

    def __init__(self, log: BuildLog) -> None:
        self._log = log
        self._partial = ""

    def feed(self, text: str) -> None:
        *complete, self._partial = (self._partial + text).split("\n")
        for line in complete:
            self._log.write(line)

    def flush(self) -> None:
        if self._partial:
            self._log.write(self._partial)
            self._partial = ""
