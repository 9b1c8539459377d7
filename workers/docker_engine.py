"""This worker process's one Docker client, made at first use and kept for the process's life,
and the names the Docker builder and runner both use."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable

import docker
from docker.errors import DockerException

from shipyard.shared.exceptions import StageFailed


class DockerEngine:
    """The connection to a Docker Engine that the Docker builder and runner share.

    `docker.from_env()` reads DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, so a worker can
    drive another host's engine. The worker context (and so this) is made in each pool process
    after Celery forks, so no connection is shared across a fork, and nothing connects at import
    or for a worker that never runs a Docker stage. A failed connection is not kept: the next
    stage tries again.
    """

    def __init__(self, connect: Callable[[], docker.DockerClient] = docker.from_env) -> None:
        self._connect = connect
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()

    def client(self) -> docker.DockerClient:
        """The client, connected on first use; StageFailed when the engine does not answer."""
        with self._lock:
            if self._client is None:
                try:
                    self._client = self._connect()
                except DockerException as exc:
                    raise StageFailed(
                        f"the Docker engine does not answer (DOCKER_HOST): {exc}"
                    ) from exc
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def image_tag(app: str, commit_sha: str, path: str = "") -> str:
    """The image's name: one tag per app, commit and folder of the app in the commit (`apps
    update --path` builds the commit anew, as another image), so `docker images` tells what is
    what."""
    folder = f"-{hashlib.sha256(path.encode()).hexdigest()[:8]}" if path else ""
    return f"shipyard/{app}:{commit_sha[:12]}{folder}"
