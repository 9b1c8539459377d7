"""Fixtures and helpers for tests on a real Docker Engine (a pytest plugin: `pytest_plugins`).

Nothing can be pulled here, so test images are built `FROM scratch` with a static busybox, which
dispatches on argv[0]: copied in as /bin/sh it is the shell that Procfile lines need.

Without an engine these tests skip; with SHIPYARD_REQUIRE_DOCKER=1 (as in CI) they fail instead.
Every test app is named `test-<session>-…`: at the end of the session its containers and images
(tagged `shipyard/test-<session>-…`) are removed, and the session fails if any would remain. The
session part keeps two test sessions sharing one engine out of each other's way.

Test modules import helpers from here before `pytest_plugins` registers it, too late for assertion
rewriting: PYTEST_DONT_REWRITE says so, and its one assert carries its own message.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import docker
import pytest
from celery import Celery
from docker.errors import APIError, DockerException, NotFound

from shipyard.shared.settings import Settings
from shipyard.workers.build_log import BuildLog
from shipyard.workers.builders.base import BuildRequest, BuiltArtifact
from shipyard.workers.builders.docker import DockerBuilder
from shipyard.workers.context import WorkerContext
from shipyard.workers.runners.base import ReleaseSpec

BUSYBOX = Path("/bin/busybox")
TEST_APP_PREFIX = f"test-{uuid.uuid4().hex[:6]}-"

DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
COPY busybox /bin/sh
WORKDIR /app
COPY Procfile VERSION /app/
"""

# `web` serves $GREETING on $HOST:$PORT, or exits at once when CRASH is set; `worker` idles.
PROCFILE = """\
web: test -z "$CRASH" || { echo "web refuses to start: CRASH=$CRASH"; exit 3; }; \
mkdir -p /tmp/www && echo "${GREETING:-hello}" > /tmp/www/index.html && \
exec busybox httpd -f -p "$HOST:$PORT" -h /tmp/www
worker: exec busybox sleep 3600
"""


# Read at import: the worker tests clear SHIPYARD_* variables around each test.
REQUIRE_DOCKER = os.environ.get("SHIPYARD_REQUIRE_DOCKER") == "1"


def _unavailable(reason: str) -> NoReturn:
    if REQUIRE_DOCKER:
        pytest.fail(f"{reason}; SHIPYARD_REQUIRE_DOCKER=1 makes this a failure")
    pytest.skip(reason)


def _is_test_object(labels: dict[str, str] | None) -> bool:
    return (labels or {}).get("shipyard.app", "").startswith(TEST_APP_PREFIX)


def _dangling_ids(client: docker.DockerClient) -> set[str]:
    return {image.id for image in client.images.list(filters={"dangling": True})}


def _leftovers(client: docker.DockerClient) -> tuple[list[Any], list[Any]]:
    containers = [c for c in client.containers.list(all=True) if _is_test_object(c.labels)]
    images = [
        image
        for image in client.images.list(all=True)
        if _is_test_object(image.labels)
        or any(tag.startswith(f"shipyard/{TEST_APP_PREFIX}") for tag in image.tags)
    ]
    return containers, images


def _remove_images(client: docker.DockerClient, image_ids: set[str]) -> None:
    """Remove `image_ids`, children before parents: repeat while some removal succeeds."""
    while image_ids:
        removed = set()
        for image_id in image_ids:
            try:
                client.images.remove(image_id, force=True)
            except NotFound:
                pass  # went with a child removed before it (its untagged parents go too)
            except APIError as exc:
                if exc.status_code == 409:  # it still has a child image: next round
                    continue
                raise
            removed.add(image_id)
        if not removed:
            return
        image_ids -= removed


def _storage_volumes(client: docker.DockerClient) -> list[Any]:
    """The persistent-storage volumes of the session's test apps (they outlive containers)."""
    return [v for v in client.volumes.list() if v.name.startswith(f"shipyard-{TEST_APP_PREFIX}")]


def _remove_session_objects(client: docker.DockerClient, dangling_before: set[str]) -> None:
    containers, images = _leftovers(client)
    for container in containers:
        container.remove(force=True)
    for volume in _storage_volumes(client):
        volume.remove(force=True)
    _remove_images(client, {image.id for image in images})
    # Layers of failed or superseded builds: removing one can leave its parent dangling next.
    while new := _dangling_ids(client) - dangling_before:
        _remove_images(client, new)
        if new & _dangling_ids(client):
            return  # not removable: the assertion that follows says so


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[docker.DockerClient]:
    """A client of the local engine; at the end, no test container or image may remain."""
    if not BUSYBOX.is_file():
        _unavailable(f"{BUSYBOX} is missing (install the Debian package busybox-static)")
    try:
        client = docker.from_env()
        client.ping()
    except DockerException as exc:
        _unavailable(f"no Docker engine answers ({exc})")
    dangling_before = _dangling_ids(client)
    yield client
    _remove_session_objects(client, dangling_before)
    containers, images = _leftovers(client)
    client.close()
    assert not containers and not images, f"left behind: {containers} {images}"


@pytest.fixture
def worker_context(tmp_path: Path) -> Iterator[WorkerContext]:
    """A worker's context on a data dir of its own, as a build or run worker makes it."""
    context = WorkerContext.create(Settings(data_dir=tmp_path / "data"), Celery("shipyard-tests"))
    yield context
    context.docker.close()


def unique_app() -> str:
    """A fresh app name that the session's clean-up recognises."""
    return f"{TEST_APP_PREFIX}{uuid.uuid4().hex[:10]}"


def write_app(
    folder: Path, *, version: str = "1", procfile: str = PROCFILE, dockerfile: str = DOCKERFILE
) -> Path:
    """A build context: Dockerfile, Procfile, VERSION and the static busybox."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, folder / "busybox")
    (folder / "Dockerfile").write_text(dockerfile)
    (folder / "Procfile").write_text(procfile)
    (folder / "VERSION").write_text(version + "\n")
    return folder


def build_request(source_dir: Path, app: str, commit: str, timeout: float = 60) -> BuildRequest:
    """A build request for `source_dir` as if it were `commit` of `app`."""
    work_dir = source_dir.parent / f"work-{commit[:8]}"
    work_dir.mkdir(exist_ok=True)
    return BuildRequest(
        app=app,
        commit_sha=commit,
        commit_timestamp=0,
        source_dir=source_dir,
        work_dir=work_dir,
        timeout=timeout,
    )


def build_image(
    client: docker.DockerClient, source_dir: Path, app: str, commit: str | None = None
) -> BuiltArtifact:
    """Build `source_dir` with the Docker builder and return its artifact."""
    request = build_request(source_dir, app, commit or os.urandom(20).hex())
    return DockerBuilder(client).build(request, BuildLog(1_000_000))


def release_spec(app: str, artifact_id: str, *, version: int = 1, **overrides: Any) -> ReleaseSpec:
    """A release of `app` in `staging`, with a fresh deployment id."""
    values: dict[str, Any] = {
        "app": app,
        "environment": "staging",
        "release_id": str(uuid.uuid4()),
        "release_version": version,
        "deployment_id": str(uuid.uuid4()),
        "artifact_id": artifact_id,
        "health_path": "/",
        "health_timeout": 10.0,
        "env": {},
        **overrides,
    }
    return ReleaseSpec(**values)


def containers_of(client: docker.DockerClient, label: str) -> list[Any]:
    """Containers (running or not) carrying `label` ("key=value")."""
    return list(client.containers.list(all=True, filters={"label": label}))
